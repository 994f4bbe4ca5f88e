#!/bin/sh
# A self-signed certificate for https://localhost:8443 (compose trial only).
set -eu
cd "$(dirname "$0")"
mkdir -p tls
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,DNS:mailpit,IP:127.0.0.1" -keyout tls/key.pem -out tls/cert.pem
chmod 0644 tls/key.pem   # read by the containers' non-root users; a trial key only
cp tls/cert.pem config/dev-ca.pem   # the provider trusts the mail catcher's STARTTLS with it
