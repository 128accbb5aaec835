#!/usr/bin/env python3
"""Writes the certificates the TLS tests use into OUTDIR; nothing is fetched.

    make_certs.py OUTDIR

Every key is EC P-256, every file PEM:

    ca.pem, ca.key             a CA (CN aio-test-ca) that signs the others
    srv.pem, srv.key           CN localhost; SAN DNS:localhost, IP:127.0.0.1, IP:::1
    srv-chain.pem              srv.pem followed by ca.pem
    srv-enc.key                srv.key encrypted with the password "aiocpp-test"
    client.pem, client.key     CN aio-test-client, for client authentication
    expired.pem, expired.key   as srv.pem, but valid only in 2020
    wrongname.pem, wrongname.key   SAN DNS:wrong.example only
    self.pem, self.key         self-signed, SAN DNS:localhost (not from the CA)

Validity is two days around now (except expired.pem), so a clock a little
off does not matter. Python's `cryptography` (Debian: python3-cryptography)
writes them, since OpenSSL 3.0's command line cannot date a certificate in
the past.
"""
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASSWORD = b"aiocpp-test"


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(subject_key, cn, issuer_key, issuer_cn, *, ca=False, sans=(), usage=None,
                not_before=None, not_after=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(name(cn))
               .issuer_name(name(issuer_cn))
               .public_key(subject_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or now - datetime.timedelta(days=1))
               .not_valid_after(not_after or now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write(path, *blobs):
    with open(path, "wb") as f:
        for blob in blobs:
            f.write(blob)


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key, password=None):
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    localhost = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.IPAddress(ipaddress.ip_address("::1"))]

    ca_key = new_key()
    ca = certificate(ca_key, "aio-test-ca", ca_key, "aio-test-ca", ca=True)
    write(os.path.join(out, "ca.pem"), pem(ca))
    write(os.path.join(out, "ca.key"), key_pem(ca_key))

    def issue(stem, cn, sans, usage, **dates):
        key = new_key()
        cert = certificate(key, cn, ca_key, "aio-test-ca", sans=sans, usage=usage, **dates)
        write(os.path.join(out, stem + ".pem"), pem(cert))
        write(os.path.join(out, stem + ".key"), key_pem(key))
        return key, cert

    srv_key, srv = issue("srv", "localhost", localhost, ExtendedKeyUsageOID.SERVER_AUTH)
    write(os.path.join(out, "srv-chain.pem"), pem(srv), pem(ca))
    write(os.path.join(out, "srv-enc.key"), key_pem(srv_key, PASSWORD))
    issue("client", "aio-test-client", [x509.DNSName("aio-test-client")], ExtendedKeyUsageOID.CLIENT_AUTH)
    issue("expired", "localhost", localhost, ExtendedKeyUsageOID.SERVER_AUTH,
          not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
          not_after=datetime.datetime(2020, 12, 31, tzinfo=datetime.timezone.utc))
    issue("wrongname", "wrong.example", [x509.DNSName("wrong.example")], ExtendedKeyUsageOID.SERVER_AUTH)

    self_key = new_key()
    self_cert = certificate(self_key, "localhost", self_key, "localhost", sans=[x509.DNSName("localhost")])
    write(os.path.join(out, "self.pem"), pem(self_cert))
    write(os.path.join(out, "self.key"), key_pem(self_key))


if __name__ == "__main__":
    main()
