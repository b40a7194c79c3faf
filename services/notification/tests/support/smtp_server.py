"""A real SMTP server for the notification tests: aiosmtpd with a Maildir handler.

usage: smtp_server.py PORT MAILDIR [CERT KEY]   (with CERT and KEY: STARTTLS offered and required)
Prints `ready` once listening; stops when its stdin closes.
"""
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


def main():
    port, maildir = int(sys.argv[1]), sys.argv[2]
    tls = None
    if len(sys.argv) > 4:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[3], sys.argv[4])
    controller = Controller(
        Mailbox(maildir),
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=tls is not None,
    )
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
