//! Aliyun (Alibaba Cloud) Short Message Service, dysmsapi 2017-05-25.
//!
//! Requests are RPC-style and signed with signature v1 (HMAC-SHA1), as
//! <https://help.aliyun.com/document_detail/69009.html> and the SMS page
//! <https://help.aliyun.com/document_detail/56189.html> describe:
//!
//! 1. every parameter but `Signature`, sorted by name; names and values percent-encoded with
//!    only `A-Z a-z 0-9 - _ . ~` left as is (space is `%20`, `*` is `%2A`), joined `k=v&k=v`;
//! 2. `StringToSign = METHOD & percentEncode("/") & percentEncode(canonicalized query)`;
//! 3. `Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))`.
//!
//! Receipts: the `SmsReport` HTTP batch push
//! (<https://help.aliyun.com/document_detail/101867.html>) and `QuerySendDetails`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

use super::{
    Accepted, PhoneNumber, ProviderError, ProviderKind, Receipt, ReceiptError, ReceiptStatus,
    SmsProvider, SmsRequest, parse_cst,
};

const KIND: ProviderKind = ProviderKind::Aliyun;
pub const DEFAULT_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com/";
const API_VERSION: &str = "2017-05-25";

#[derive(Clone)]
pub struct AliyunConfig {
    pub endpoint: reqwest::Url,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub region_id: String,
    /// The approved signature (签名) shown as 【…】 before every message.
    pub sign_name: String,
    /// Our template key → Aliyun `TemplateCode` (e.g. `SMS_71390007`).
    pub templates: HashMap<String, String>,
    pub timeout: Duration,
}

/// `percentEncode` of the signature documentation: RFC 3986 unreserved characters stay.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn canonicalized_query(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(name, _)| name.as_str() != "Signature")
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn string_to_sign(method: &str, params: &BTreeMap<String, String>) -> String {
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonicalized_query(params))
    )
}

/// The v1 signature of `params` (sorted by the map; `Signature` itself left out).
pub fn sign(method: &str, params: &BTreeMap<String, String>, access_key_secret: &str) -> String {
    let key = format!("{access_key_secret}&");
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha1>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(string_to_sign(method, params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub struct Aliyun {
    config: AliyunConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendResponse {
    code: Option<String>,
    message: Option<String>,
    biz_id: Option<String>,
    request_id: Option<String>,
}

impl Aliyun {
    pub fn new(config: AliyunConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(Aliyun { config, http })
    }

    fn common_params(&self, action: &str, now: DateTime<Utc>) -> BTreeMap<String, String> {
        let pairs = [
            ("AccessKeyId", self.config.access_key_id.clone()),
            ("Action", action.to_owned()),
            ("Format", "JSON".to_owned()),
            ("RegionId", self.config.region_id.clone()),
            ("SignatureMethod", "HMAC-SHA1".to_owned()),
            ("SignatureNonce", uuid::Uuid::now_v7().to_string()),
            ("SignatureVersion", "1.0".to_owned()),
            ("Timestamp", now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ("Version", API_VERSION.to_owned()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// POSTs the signed parameters as a form body (kept out of URLs, which get logged) and
    /// returns the HTTP status and body.
    async fn call(
        &self,
        mut params: BTreeMap<String, String>,
    ) -> Result<(u16, Vec<u8>), ProviderError> {
        let signature = sign("POST", &params, &self.config.access_key_secret);
        params.insert("Signature".into(), signature);
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = self
            .http
            .post(self.config.endpoint.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        ProviderError::exchange(KIND, request).await
    }

    async fn send_sms(&self, request: &SmsRequest) -> Result<Accepted, ProviderError> {
        let template_code = ProviderError::template(KIND, &self.config.templates, request)?;
        let variables: serde_json::Map<String, serde_json::Value> = request
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let mut params = self.common_params("SendSms", Utc::now());
        params.insert("PhoneNumbers".into(), request.to.aliyun().to_owned());
        params.insert("SignName".into(), self.config.sign_name.clone());
        params.insert("TemplateCode".into(), template_code.clone());
        params.insert(
            "TemplateParam".into(),
            serde_json::Value::Object(variables).to_string(),
        );
        params.insert("OutId".into(), request.reference.clone());
        let (status, body) = self.call(params).await?;
        parse_send_response(status, &body)
    }

    /// `QuerySendDetails` for one message: how to fill a gap when no receipt came.
    /// `send_date` is the day the message was sent (China Standard Time).
    pub async fn query_send_details(
        &self,
        phone: &PhoneNumber,
        biz_id: &str,
        send_date: chrono::NaiveDate,
    ) -> Result<Vec<Receipt>, ProviderError> {
        let mut params = self.common_params("QuerySendDetails", Utc::now());
        params.insert("PhoneNumber".into(), phone.aliyun().to_owned());
        params.insert("BizId".into(), biz_id.to_owned());
        params.insert("SendDate".into(), send_date.format("%Y%m%d").to_string());
        params.insert("PageSize".into(), "10".into());
        params.insert("CurrentPage".into(), "1".into());
        let (status, body) = self.call(params).await?;
        parse_query_response(status, &body, biz_id)
    }
}

impl SmsProvider for Aliyun {
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

/// A `SendSms` answer: `Code` `OK` with a `BizId`, or an error code.
pub fn parse_send_response(status: u16, body: &[u8]) -> Result<Accepted, ProviderError> {
    let parsed: SendResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::unreadable(KIND, status, &e.to_string()))?;
    let code = parsed.code.unwrap_or_default();
    match (code.as_str(), parsed.biz_id) {
        ("OK", Some(biz_id)) => Ok(Accepted {
            provider: KIND,
            message_id: biz_id,
            request_id: parsed.request_id,
        }),
        ("OK", None) => Err(ProviderError::unreadable(
            KIND,
            status,
            "OK without a BizId",
        )),
        ("", _) => Err(ProviderError::unreadable(KIND, status, "no Code")),
        (code, _) => Err(ProviderError::from_code(
            KIND,
            code,
            parsed.message.as_deref().unwrap_or(""),
        )),
    }
}

#[derive(Deserialize)]
struct Report {
    phone_number: String,
    report_time: Option<String>,
    success: bool,
    err_code: String,
    #[serde(default)]
    err_msg: String,
    biz_id: String,
    out_id: Option<String>,
}

/// The body Aliyun POSTs to our receipt callback (`SmsReport`, a JSON array). Answer it with
/// [`REPORT_ACK`].
pub fn parse_report(body: &[u8]) -> Result<Vec<Receipt>, ReceiptError> {
    let reports: Vec<Report> =
        serde_json::from_slice(body).map_err(|source| ReceiptError::Malformed {
            provider: KIND,
            source,
        })?;
    Ok(reports
        .into_iter()
        .map(|r| Receipt {
            provider: KIND,
            message_id: r.biz_id,
            phone: r.phone_number,
            status: if r.success {
                ReceiptStatus::Delivered
            } else {
                ReceiptStatus::Failed
            },
            code: r.err_code,
            description: r.err_msg,
            reported_at: r.report_time.as_deref().and_then(parse_cst),
            reference: r.out_id.filter(|s| !s.is_empty()),
        })
        .collect())
}

/// What the callback must answer (`code` 0) for Aliyun not to push the batch again.
pub const REPORT_ACK: &str = r#"{"code":0,"msg":"成功"}"#;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Detail {
    phone_num: String,
    send_status: i64,
    #[serde(default)]
    err_code: String,
    receive_date: Option<String>,
    out_id: Option<String>,
}

/// A `QuerySendDetails` answer. `SendStatus`: 1 waiting for a report, 2 failed, 3 delivered.
pub fn parse_query_response(
    status: u16,
    body: &[u8],
    biz_id: &str,
) -> Result<Vec<Receipt>, ProviderError> {
    // Read as a tree: the list sits two levels down, `SmsSendDetailDTOs.SmsSendDetailDTO`.
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::unreadable(KIND, status, &e.to_string()))?;
    let code = value
        .get("Code")
        .and_then(|c| c.as_str())
        .unwrap_or_default();
    if code != "OK" {
        let message = value.get("Message").and_then(|m| m.as_str()).unwrap_or("");
        return Err(ProviderError::from_code(KIND, code, message));
    }
    let details = value
        .get("SmsSendDetailDTOs")
        .and_then(|d| d.get("SmsSendDetailDTO"))
        .cloned()
        .unwrap_or(serde_json::Value::Array(Vec::new()));
    let details: Vec<Detail> = serde_json::from_value(details)
        .map_err(|e| ProviderError::unreadable(KIND, status, &e.to_string()))?;
    Ok(details
        .into_iter()
        .map(|d| Receipt {
            provider: KIND,
            message_id: biz_id.to_owned(),
            phone: d.phone_num,
            status: match d.send_status {
                3 => ReceiptStatus::Delivered,
                2 => ReceiptStatus::Failed,
                _ => ReceiptStatus::Pending,
            },
            code: d.err_code,
            description: String::new(),
            reported_at: d.receive_date.as_deref().and_then(parse_cst),
            reference: d.out_id.filter(|s| !s.is_empty()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The example of the SMS signature page (help.aliyun.com/document_detail/56189.html).
    #[test]
    fn signs_the_documented_send_sms_example() {
        let p = params(&[
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", r#"{"customer":"test"}"#),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]);
        assert_eq!(
            string_to_sign("GET", &p),
            "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
        );
        assert_eq!(
            sign("GET", &p, "testSecret"),
            "zJDF+Lrzhj/ThnlvIToysFRq6t4="
        );
    }

    /// The example of the RPC signature mechanism page (DescribeRegions, `testsecret`).
    #[test]
    fn signs_the_documented_rpc_example() {
        let p = params(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("TimeStamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
            ("Signature", "ignored"),
        ]);
        assert_eq!(
            sign("GET", &p, "testsecret"),
            "CT9X0VtwR86fNWSnsc6v8YGOjuE="
        );
    }

    #[test]
    fn percent_encoding_follows_the_documented_rules() {
        assert_eq!(percent_encode("a b*c~d"), "a%20b%2Ac~d");
        assert_eq!(percent_encode("/=&+"), "%2F%3D%26%2B");
        assert_eq!(percent_encode("派"), "%E6%B4%BE");
    }

    #[test]
    fn parses_send_answers() {
        let ok = br#"{"Code":"OK","Message":"OK","BizId":"9006197469364984400","RequestId":"F655A8D5-B967-440B-8683-DAD6FF8DE990"}"#;
        let accepted = parse_send_response(200, ok).unwrap();
        assert_eq!(accepted.message_id, "9006197469364984400");
        let throttled = r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发分钟级流控Permits:1","RequestId":"x"}"#.as_bytes();
        assert!(matches!(
            parse_send_response(200, throttled),
            Err(ProviderError::Throttled { .. })
        ));
        let bad_number =
            r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"非法手机号","RequestId":"x"}"#
                .as_bytes();
        assert!(matches!(
            parse_send_response(200, bad_number),
            Err(ProviderError::Recipient { .. })
        ));
        assert!(matches!(
            parse_send_response(502, b"<html>bad gateway</html>"),
            Err(ProviderError::InDoubt { .. })
        ));
    }

    /// The example of the SmsReport page.
    #[test]
    fn parses_the_documented_report() {
        let body = r#"[{"phone_number":"1381111****","send_time":"2017-01-01 00:00:00","report_time":"2017-01-01 00:00:00","success":true,"err_code":"DELIVERED","err_msg":"用户接收成功","sms_size":"1","biz_id":"12345","out_id":"67890"}]"#;
        let receipts = parse_report(body.as_bytes()).unwrap();
        assert_eq!(receipts.len(), 1);
        let r = &receipts[0];
        assert_eq!(r.key(), (ProviderKind::Aliyun, "12345"));
        assert_eq!(r.status, ReceiptStatus::Delivered);
        assert_eq!(r.code, "DELIVERED");
        assert_eq!(r.reference.as_deref(), Some("67890"));
        assert_eq!(
            r.reported_at.unwrap().to_rfc3339(),
            "2017-01-01T00:00:00+08:00"
        );
        assert!(parse_report(b"{}").is_err());
    }

    #[test]
    fn parses_query_answers() {
        let body = r#"{"Code":"OK","Message":"OK","RequestId":"r","TotalCount":1,"SmsSendDetailDTOs":{"SmsSendDetailDTO":[{"ErrCode":"DELIVERED","TemplateCode":"SMS_1","OutId":"d-1","SendDate":"2019-01-08 16:44:10","SendStatus":3,"Content":"…","ReceiveDate":"2019-01-08 16:44:13","PhoneNum":"15298356881"}]}}"#;
        let receipts = parse_query_response(200, body.as_bytes(), "b-1").unwrap();
        assert_eq!(receipts[0].message_id, "b-1");
        assert_eq!(receipts[0].status, ReceiptStatus::Delivered);
        assert_eq!(receipts[0].reference.as_deref(), Some("d-1"));
    }
}
