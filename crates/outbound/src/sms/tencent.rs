//! Tencent Cloud SMS, API 2021-01-11, signed with TC3-HMAC-SHA256 as
//! <https://www.tencentcloud.com/document/api/382/40468> ("Signature v3") describes:
//!
//! 1. `CanonicalRequest = Method \n / \n "" \n CanonicalHeaders \n SignedHeaders \n
//!    hex(SHA256(payload))`, headers lower-cased (name and value), trimmed, sorted by name,
//!    each `name:value\n`; at least `content-type` and `host`;
//! 2. `StringToSign = "TC3-HMAC-SHA256" \n timestamp \n date/service/tc3_request \n
//!    hex(SHA256(CanonicalRequest))`, the date being the UTC day of the timestamp;
//! 3. `SecretSigning = HMAC(HMAC(HMAC("TC3" + SecretKey, date), service), "tc3_request")`,
//!    `Signature = hex(HMAC(SecretSigning, StringToSign))`;
//! 4. `Authorization: TC3-HMAC-SHA256 Credential=SecretId/scope, SignedHeaders=…, Signature=…`.
//!
//! Receipts: the status callback (<https://www.tencentcloud.com/document/api/382/43547>) and
//! `PullSmsSendStatus`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    Accepted, ProviderError, ProviderKind, Receipt, ReceiptError, ReceiptStatus, SmsProvider,
    SmsRequest, parse_cst,
};

const KIND: ProviderKind = ProviderKind::Tencent;
pub const DEFAULT_ENDPOINT: &str = "https://sms.tencentcloudapi.com/";
const API_VERSION: &str = "2021-01-11";
const SERVICE: &str = "sms";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

#[derive(Clone)]
pub struct TencentConfig {
    pub endpoint: reqwest::Url,
    pub secret_id: String,
    pub secret_key: String,
    pub region: String,
    pub sms_sdk_app_id: String,
    pub sign_name: String,
    /// Our template key → Tencent `TemplateId`.
    pub templates: HashMap<String, String>,
    pub timeout: Duration,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Step 1. `headers` are (name, value) as sent; they are lower-cased and sorted here.
/// Returns the canonical request and the `SignedHeaders` list.
pub fn canonical_request(
    method: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> (String, String) {
    let mut canon: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_lowercase()))
        .collect();
    canon.sort();
    let header_lines: String = canon.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed = canon
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let request = format!(
        "{method}\n/\n\n{header_lines}\n{signed}\n{}",
        hex(&Sha256::digest(payload))
    );
    (request, signed)
}

/// Steps 2 and 3: the hex signature of a canonical request.
pub fn signature(
    secret_key: &str,
    service: &str,
    timestamp: i64,
    canonical_request: &str,
) -> String {
    let date = DateTime::<Utc>::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let secret_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let secret_service = hmac_sha256(&secret_date, service.as_bytes());
    let secret_signing = hmac_sha256(&secret_service, b"tc3_request");
    hex(&hmac_sha256(&secret_signing, string_to_sign.as_bytes()))
}

/// Step 4.
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    timestamp: i64,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> String {
    let (request, signed_headers) = canonical_request("POST", headers, payload);
    let date = DateTime::<Utc>::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d");
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{date}/{service}/tc3_request, SignedHeaders={signed_headers}, Signature={}",
        signature(secret_key, service, timestamp, &request)
    )
}

pub struct Tencent {
    config: TencentConfig,
    http: reqwest::Client,
    /// `Host` as sent (with the port when it is not the scheme's default): it is signed.
    host: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope<T> {
    response: ResponseBody<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResponseBody<T> {
    error: Option<ApiError>,
    request_id: Option<String>,
    #[serde(flatten)]
    body: Option<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiError {
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendBody {
    #[serde(default)]
    send_status_set: Vec<SendStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendStatus {
    serial_no: String,
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PullBody {
    #[serde(default)]
    pull_sms_send_status_set: Vec<PulledStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PulledStatus {
    user_receive_time: Option<String>,
    phone_number: String,
    serial_no: String,
    report_status: String,
    #[serde(default)]
    description: String,
    session_context: Option<String>,
}

impl Tencent {
    pub fn new(config: TencentConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        let host = match (config.endpoint.host_str(), config.endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        Ok(Tencent { config, http, host })
    }

    async fn call(&self, action: &str, payload: Vec<u8>) -> Result<(u16, Vec<u8>), ProviderError> {
        let timestamp = Utc::now().timestamp();
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("host", self.host.as_str()),
            ("x-tc-action", action),
        ];
        let auth = authorization(
            &self.config.secret_id,
            &self.config.secret_key,
            SERVICE,
            timestamp,
            &headers,
            &payload,
        );
        let request = self
            .http
            .post(self.config.endpoint.clone())
            .header("authorization", auth)
            .header("content-type", CONTENT_TYPE)
            .header("host", &self.host)
            .header("x-tc-action", action)
            .header("x-tc-timestamp", timestamp.to_string())
            .header("x-tc-version", API_VERSION)
            .header("x-tc-region", &self.config.region)
            .body(payload);
        ProviderError::exchange(KIND, request).await
    }

    async fn send_sms(&self, request: &SmsRequest) -> Result<Accepted, ProviderError> {
        let template_id = ProviderError::template(KIND, &self.config.templates, request)?;
        let payload = serde_json::json!({
            "PhoneNumberSet": [request.to.e164()],
            "SmsSdkAppId": self.config.sms_sdk_app_id,
            "SignName": self.config.sign_name,
            "TemplateId": template_id,
            "TemplateParamSet": request.params.iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "SessionContext": request.reference,
        });
        let (status, body) = self
            .call("SendSms", payload.to_string().into_bytes())
            .await?;
        parse_send_response(status, &body)
    }

    /// `PullSmsSendStatus`: receipts not yet pulled (each is handed out once by Tencent, so
    /// the caller stores them before acknowledging anything).
    pub async fn pull_send_status(&self, limit: u32) -> Result<Vec<Receipt>, ProviderError> {
        let payload =
            serde_json::json!({ "Limit": limit, "SmsSdkAppId": self.config.sms_sdk_app_id });
        let (status, body) = self
            .call("PullSmsSendStatus", payload.to_string().into_bytes())
            .await?;
        parse_pull_response(status, &body)
    }
}

impl SmsProvider for Tencent {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn send<'a>(
        &'a self,
        request: &'a SmsRequest,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(self.send_sms(request))
    }
}

fn read<T: for<'de> Deserialize<'de>>(
    status: u16,
    body: &[u8],
) -> Result<(T, Option<String>), ProviderError> {
    let envelope: Envelope<T> = serde_json::from_slice(body)
        .map_err(|e| ProviderError::unreadable(KIND, status, &e.to_string()))?;
    let response = envelope.response;
    if let Some(err) = response.error {
        return Err(ProviderError::from_code(KIND, &err.code, &err.message));
    }
    let body = response
        .body
        .ok_or_else(|| ProviderError::unreadable(KIND, status, "no Response body"))?;
    Ok((body, response.request_id))
}

/// A `SendSms` answer: a request-level `Error`, or one status per number (we send one).
pub fn parse_send_response(status: u16, body: &[u8]) -> Result<Accepted, ProviderError> {
    let (sent, request_id) = read::<SendBody>(status, body)?;
    let Some(first) = sent.send_status_set.into_iter().next() else {
        return Err(ProviderError::unreadable(
            KIND,
            status,
            "empty SendStatusSet",
        ));
    };
    if first.code == "Ok" {
        Ok(Accepted {
            provider: KIND,
            message_id: first.serial_no,
            request_id,
        })
    } else {
        Err(ProviderError::from_code(KIND, &first.code, &first.message))
    }
}

/// A `PullSmsSendStatus` answer.
pub fn parse_pull_response(status: u16, body: &[u8]) -> Result<Vec<Receipt>, ProviderError> {
    let (pulled, _) = read::<PullBody>(status, body)?;
    Ok(pulled
        .pull_sms_send_status_set
        .into_iter()
        .map(|p| Receipt {
            provider: KIND,
            message_id: p.serial_no,
            phone: p.phone_number,
            status: report_status(&p.report_status),
            code: p.report_status,
            description: p.description,
            reported_at: p.user_receive_time.as_deref().and_then(parse_cst),
            reference: p.session_context.filter(|s| !s.is_empty()),
        })
        .collect())
}

fn report_status(value: &str) -> ReceiptStatus {
    match value {
        "SUCCESS" => ReceiptStatus::Delivered,
        "FAIL" => ReceiptStatus::Failed,
        _ => ReceiptStatus::Pending,
    }
}

#[derive(Deserialize)]
struct Callback {
    user_receive_time: Option<String>,
    #[serde(default)]
    nationcode: String,
    mobile: String,
    report_status: String,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    description: String,
    sid: String,
}

/// The body Tencent POSTs to our status callback (a JSON array). Answer with [`CALLBACK_ACK`].
pub fn parse_callback(body: &[u8]) -> Result<Vec<Receipt>, ReceiptError> {
    let reports: Vec<Callback> =
        serde_json::from_slice(body).map_err(|source| ReceiptError::Malformed {
            provider: KIND,
            source,
        })?;
    Ok(reports
        .into_iter()
        .map(|r| Receipt {
            provider: KIND,
            message_id: r.sid,
            phone: format!("+{}{}", r.nationcode, r.mobile),
            status: report_status(&r.report_status),
            code: r.errmsg,
            description: r.description,
            reported_at: r.user_receive_time.as_deref().and_then(parse_cst),
            reference: None,
        })
        .collect())
}

/// What the callback answers for Tencent to count the push as received.
pub const CALLBACK_ACK: &str = r#"{"result":0,"errmsg":"OK"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of "Signature v3" (DescribeInstances, cvm, 1551113065).
    #[test]
    fn signs_the_documented_example() {
        let payload = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Host", "cvm.tencentcloudapi.com"),
        ];
        let (request, signed) = canonical_request("POST", &headers, payload);
        assert_eq!(signed, "content-type;host");
        assert_eq!(
            request,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            hex(&Sha256::digest(request.as_bytes())),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        let auth = authorization(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            "cvm",
            1551113065,
            &headers,
            payload,
        );
        assert_eq!(
            auth,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn parses_send_answers() {
        let ok = br#"{"Response":{"SendStatusSet":[{"SerialNo":"5000:1045710669157053657849499619","PhoneNumber":"+8618511122233","Fee":1,"SessionContext":"test","Code":"Ok","Message":"send success","IsoCode":"CN"}],"RequestId":"a0aabda6-cf91-4f3e-a81f-9198114a2279"}}"#;
        let accepted = parse_send_response(200, ok).unwrap();
        assert_eq!(accepted.message_id, "5000:1045710669157053657849499619");
        let limited = br#"{"Response":{"SendStatusSet":[{"SerialNo":"","PhoneNumber":"+8618511122233","Fee":0,"SessionContext":"","Code":"LimitExceeded.PhoneNumberThirtySecondLimit","Message":"30s limit","IsoCode":"CN"}],"RequestId":"r"}}"#;
        assert!(matches!(
            parse_send_response(200, limited),
            Err(ProviderError::Throttled { .. })
        ));
        let auth = br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"bad"},"RequestId":"r"}}"#;
        assert!(matches!(
            parse_send_response(200, auth),
            Err(ProviderError::Refused { .. })
        ));
        let busy = br#"{"Response":{"Error":{"Code":"RequestLimitExceeded","Message":"busy"},"RequestId":"r"}}"#;
        assert!(matches!(
            parse_send_response(200, busy),
            Err(ProviderError::Throttled { .. })
        ));
    }

    /// The example of the status callback page.
    #[test]
    fn parses_the_documented_callback() {
        let body = r#"[{"user_receive_time":"2015-10-17 08:03:04","nationcode":"86","mobile":"13xxxxxxxxx","report_status":"SUCCESS","errmsg":"DELIVRD","description":"用户短信送达成功","sid":"xxxxxxx"}]"#;
        let receipts = parse_callback(body.as_bytes()).unwrap();
        assert_eq!(receipts[0].key(), (ProviderKind::Tencent, "xxxxxxx"));
        assert_eq!(receipts[0].status, ReceiptStatus::Delivered);
        assert_eq!(receipts[0].code, "DELIVRD");
        assert_eq!(
            receipts[0].reported_at.unwrap().to_rfc3339(),
            "2015-10-17T08:03:04+08:00"
        );
    }

    #[test]
    fn parses_pulled_statuses() {
        let body = r#"{"Response":{"PullSmsSendStatusSet":[{"UserReceiveTime":"2019-10-08 10:34:11","CountryCode":"86","SubscriberNumber":"13711112222","PhoneNumber":"+8613711112222","SerialNo":"14:0203121201210210211","ReportStatus":"FAIL","Description":"用户拒收","SessionContext":"d-9"}],"RequestId":"r"}}"#;
        let receipts = parse_pull_response(200, body.as_bytes()).unwrap();
        assert_eq!(receipts[0].message_id, "14:0203121201210210211");
        assert_eq!(receipts[0].status, ReceiptStatus::Failed);
        assert_eq!(receipts[0].reference.as_deref(), Some("d-9"));
    }
}
