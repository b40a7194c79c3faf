"""A local stand-in for Aliyun dysmsapi or Tencent Cloud SMS that checks each request's
signature exactly as the provider documents it, re-implemented here independently of the Rust
signer, and answers in the provider's documented response format.

    python sms_provider.py aliyun|tencent --key-id ID --secret SECRET [--mode ok|throttle|bad-number]
        [--push URL [--push-times N]]

Prints `READY <port>`, then one `SENT <json>` line per accepted message. With `--push`, each
accepted message's delivery receipt is POSTed to URL in the provider's documented push format
(Aliyun SmsReport, Tencent status callback) N times *before* the send is answered — the case of
a receipt that arrives before the sender has recorded its send — with a `PUSHED <json>` line
(status and body of the answer) per push.
Aliyun: https://help.aliyun.com/document_detail/56189.html (RPC signature v1, HMAC-SHA1).
Tencent: https://www.tencentcloud.com/document/api/382/40468 (TC3-HMAC-SHA256).
"""
import argparse
import base64
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote
from urllib.request import Request, urlopen
from urllib.error import HTTPError

args = None
lock = threading.Lock()
nonces = set()
sent = {}  # message id -> (phone, out id)
tencent_unpulled = []


def emit(kind, obj):
    with lock:
        print(kind, json.dumps(obj, ensure_ascii=False), flush=True)


def push(report):
    """POSTs a receipt push to --push, --push-times times, before the send is answered."""
    if not args.push:
        return
    data = json.dumps(report, ensure_ascii=False).encode()
    for _ in range(args.push_times):
        request = Request(args.push, data=data, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urlopen(request, timeout=10) as answer:
                emit("PUSHED", {"status": answer.status, "body": answer.read().decode()})
        except HTTPError as e:
            emit("PUSHED", {"status": e.code, "body": e.read().decode()})


# ---- Aliyun -------------------------------------------------------------------------------
def pe(value):
    # percentEncode: only A-Z a-z 0-9 - _ . ~ stay; space is %20, * is %2A.
    return quote(value, safe="-_.~")


def aliyun_check(method, params):
    """Returns an error code, or None when the request is signed as documented."""
    given = params.pop("Signature", None)
    if given is None:
        return "MissingSignature"
    canonical = "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(params.items()))
    string_to_sign = f"{method}&{pe('/')}&{pe(canonical)}"
    digest = hmac.new((args.secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), given):
        return "SignatureDoesNotMatch"
    if params.get("AccessKeyId") != args.key_id:
        return "InvalidAccessKeyId.NotFound"
    if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
        return "InvalidSignatureMethod"
    stamp = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    if abs(time.time() - stamp.timestamp()) > 900:
        return "InvalidTimeStamp.Expired"
    with lock:
        if params["SignatureNonce"] in nonces:
            return "SignatureNonceUsed"
        nonces.add(params["SignatureNonce"])
    if params.get("Version") != "2017-05-25":
        return "InvalidVersion"
    return None


def aliyun(handler, body):
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    error = aliyun_check("POST", params)
    request_id = str(uuid.uuid4()).upper()
    if error:
        return 400, {"RequestId": request_id, "Code": error, "Message": "Specified signature is not matched with our calculation."}
    if params["Action"] == "SendSms":
        if args.mode == "throttle":
            return 200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1", "RequestId": request_id}
        if args.mode == "bad-number":
            return 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": request_id}
        biz_id = f"{int(time.time() * 1000)}^{uuid.uuid4().int % 10**10}"
        with lock:
            sent[biz_id] = (params["PhoneNumbers"], params.get("OutId", ""))
        emit("SENT", {"provider": "aliyun", "id": biz_id, "phone": params["PhoneNumbers"], "sign": params["SignName"],
                      "template": params["TemplateCode"], "params": json.loads(params["TemplateParam"]), "ref": params.get("OutId")})
        # SmsReport push: https://help.aliyun.com/document_detail/101867.html
        push([{"phone_number": params["PhoneNumbers"], "send_time": "2026-12-03 10:00:00", "report_time": "2026-12-03 10:00:05",
               "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": biz_id,
               "out_id": params.get("OutId", "")}])
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}
    if params["Action"] == "QuerySendDetails":
        with lock:
            known = sent.get(params["BizId"])
        details = []
        if known and known[0] == params["PhoneNumber"]:
            details.append({"ErrCode": "DELIVERED", "TemplateCode": "SMS_1", "OutId": known[1], "SendDate": "2026-12-03 10:00:00",
                            "SendStatus": 3, "Content": "…", "ReceiveDate": "2026-12-03 10:00:05", "PhoneNum": known[0]})
        return 200, {"Code": "OK", "Message": "OK", "RequestId": request_id, "TotalCount": len(details),
                     "SmsSendDetailDTOs": {"SmsSendDetailDTO": details}}
    return 400, {"Code": "InvalidAction.NotFound", "Message": params["Action"], "RequestId": request_id}


# ---- Tencent ------------------------------------------------------------------------------
AUTH = re.compile(r"^TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z]+)/tc3_request, "
                  r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


def tc3(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tencent_check(handler, body):
    m = AUTH.match(handler.headers.get("Authorization", ""))
    if not m:
        return "AuthFailure.SignatureFailure"
    secret_id, date, service, signed_headers, given = m.groups()
    if secret_id != args.key_id:
        return "AuthFailure.SecretIdNotFound"
    timestamp = int(handler.headers.get("X-TC-Timestamp", "0"))
    if abs(time.time() - timestamp) > 300:
        return "AuthFailure.SignatureExpire"
    if datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d") != date or service != "sms":
        return "AuthFailure.SignatureFailure"
    names = signed_headers.split(";")
    if "content-type" not in names or "host" not in names or names != sorted(names):
        return "AuthFailure.SignatureFailure"
    canonical_headers = "".join(f"{n}:{handler.headers.get(n, '').strip().lower()}\n" for n in names)
    canonical_request = "\n".join(["POST", "/", "", canonical_headers, signed_headers, hashlib.sha256(body).hexdigest()])
    string_to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), f"{date}/{service}/tc3_request",
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    signing = tc3(tc3(tc3(("TC3" + args.secret).encode(), date), service), "tc3_request")
    expected = hmac.new(signing, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        return "AuthFailure.SignatureFailure"
    if handler.headers.get("X-TC-Version") != "2021-01-11" or not handler.headers.get("X-TC-Region"):
        return "InvalidParameter"
    return None


def tencent(handler, body):
    request_id = str(uuid.uuid4())
    error = tencent_check(handler, body)
    if error:
        return 200, {"Response": {"Error": {"Code": error, "Message": "signature check failed"}, "RequestId": request_id}}
    action = handler.headers.get("X-TC-Action")
    req = json.loads(body)
    if action == "SendSms":
        phone = req["PhoneNumberSet"][0]
        if args.mode == "throttle":
            status = {"SerialNo": "", "PhoneNumber": phone, "Fee": 0, "SessionContext": "", "Code": "LimitExceeded.PhoneNumberThirtySecondLimit",
                      "Message": "the number of SMS messages sent from a single mobile number within 30 seconds exceeds the upper limit", "IsoCode": "CN"}
        elif args.mode == "bad-number":
            status = {"SerialNo": "", "PhoneNumber": phone, "Fee": 0, "SessionContext": "", "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                      "Message": "incorrect phone number", "IsoCode": "CN"}
        else:
            serial = f"2645:{uuid.uuid4().int % 10**28}"
            status = {"SerialNo": serial, "PhoneNumber": phone, "Fee": 1, "SessionContext": req.get("SessionContext", ""), "Code": "Ok",
                      "Message": "send success", "IsoCode": "CN"}
            with lock:
                tencent_unpulled.append({"UserReceiveTime": "2026-12-03 10:00:05", "CountryCode": "86", "SubscriberNumber": phone[3:],
                                         "PhoneNumber": phone, "SerialNo": serial, "ReportStatus": "SUCCESS", "Description": "用户短信送达成功",
                                         "SessionContext": req.get("SessionContext", "")})
            emit("SENT", {"provider": "tencent", "id": serial, "phone": phone, "sign": req["SignName"], "template": req["TemplateId"],
                          "params": req["TemplateParamSet"], "ref": req.get("SessionContext"), "app": req["SmsSdkAppId"]})
            # Status callback: https://www.tencentcloud.com/document/api/382/43547
            push([{"user_receive_time": "2026-12-03 10:00:05", "nationcode": "86", "mobile": phone[3:], "report_status": "SUCCESS",
                   "errmsg": "DELIVRD", "description": "用户短信送达成功", "sid": serial}])
        return 200, {"Response": {"SendStatusSet": [status], "RequestId": request_id}}
    if action == "PullSmsSendStatus":
        with lock:
            batch = tencent_unpulled[: req["Limit"]]
            del tencent_unpulled[: req["Limit"]]
        return 200, {"Response": {"PullSmsSendStatusSet": batch, "RequestId": request_id}}
    return 200, {"Response": {"Error": {"Code": "InvalidAction", "Message": str(action)}, "RequestId": request_id}}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, answer = (aliyun if args.provider == "aliyun" else tencent)(self, body)
        data = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


def main():
    global args
    parser = argparse.ArgumentParser()
    parser.add_argument("provider", choices=["aliyun", "tencent"])
    parser.add_argument("--key-id", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--mode", default="ok", choices=["ok", "throttle", "bad-number"])
    parser.add_argument("--push", help="URL to POST each accepted message's receipt to")
    parser.add_argument("--push-times", type=int, default=1)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("READY", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
