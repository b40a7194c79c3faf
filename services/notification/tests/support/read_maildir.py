"""Prints every message of a Maildir as JSON lines, read with Python's own e-mail parser:
the raw Subject (as sent, RFC 2047 encoded) and decoded, the headers, and the body."""
import email
import email.header
import email.policy
import json
import mailbox
import sys

for key, message in mailbox.Maildir(sys.argv[1], factory=None, create=False).iteritems():
    raw = message.as_bytes()
    old = email.message_from_bytes(raw, policy=email.policy.compat32)
    new = email.message_from_bytes(raw, policy=email.policy.default)
    print(json.dumps({
        "raw_subject": str(old["Subject"]),
        "subject": str(new["Subject"]),
        "message_id": str(new["Message-ID"]),
        "to": str(new["To"]),
        "from": str(new["From"]),
        "content_language": str(new["Content-Language"]),
        "content_type": new.get_content_type(),
        "charset": new.get_content_charset(),
        "template": str(new["X-Redress-Template"]),
        "body": new.get_content(),
    }, ensure_ascii=False))
