"""A throw-away Belgian eID PKI for tests, generated in fixtures (no keys are committed).

Mirrors the real hierarchy (``reference/eid.md``): a P-384 root, a Citizen CA,
per card an Authentication certificate (C=BE, CN=<Given Surname>
(Authentication), SN, GN, serialNumber=<national number>; KU
digitalSignature, EKU clientAuth, no SAN, OCSP URL in AIA, CRL distribution
point) and a non-repudiation Signature certificate, plus the National
Register (RRN) certificate issued by the root that signs the TLV identity and
address files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from connectors.eid import token as eid_token
from connectors.eid.identity_files import encode_tlv
from tests.fakes.ocsp_responder import Authority, OcspResponder

DAY = dt.timedelta(days=1)
SIGNATURE_FILE_SIZE = 0x70  # EC cards zero-pad the DER signature files to a fixed size


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Citizen:
    national_number: str = "85073003328"
    given_names: str = "Alice Marie"
    surname: str = "Peeters"
    card_number: str = "592123456789"
    birth: str = "30 JUL 1985"
    street: str = "Wetstraat 16"
    postal_code: str = "1000"
    locality: str = "Brussel"


@dataclass
class Card:
    """What a card holds: keys, certificates and the National Register's signed files."""

    citizen: Citizen
    authentication: Issued
    signature: Issued
    ca: Issued
    root: Issued
    rrn: Issued
    data_file: bytes
    data_signature: bytes
    address_file: bytes
    address_signature: bytes
    photo_file: bytes = field(default=b"")

    def identity(self) -> dict[str, str]:
        b64 = eid_token.b64encode
        return {
            "data_file": b64(self.data_file),
            "data_signature": b64(self.data_signature),
            "address_file": b64(self.address_file),
            "address_signature": b64(self.address_signature),
            "rrn_certificate": b64(self.rrn.der),
        }

    def token(
        self,
        origin: str,
        challenge: str,
        *,
        use: Issued | None = None,
        algorithm: str = "ES384",
        raw_signature: bool = True,
    ) -> dict[str, object]:
        """A bridge token signed in software, as the bridge would sign it with this card."""
        holder = use or self.authentication
        payload = eid_token.signed_payload(origin, challenge, algorithm)
        der = holder.key.sign(payload, ec.ECDSA(eid_token.hash_algorithm(algorithm)))
        signature = der
        if raw_signature:
            r, s = decode_dss_signature(der)
            size = (holder.key.curve.key_size + 7) // 8
            signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return {
            "format": eid_token.FORMAT,
            "certificate": eid_token.b64encode(holder.der),
            "algorithm": algorithm,
            "signature": eid_token.b64encode(signature),
            "challenge": challenge,
            "identity": self.identity(),
            "app_version": "test",
        }

    def web_eid_token(self, origin: str, challenge: str, *, use: Issued | None = None) -> dict[str, object]:
        """What the page posts on the Web eID path: the extension's token plus the challenge asked for."""
        bridge = self.token(origin, challenge, use=use)
        return {
            "format": "web-eid:1.0",
            "unverifiedCertificate": bridge["certificate"],
            "algorithm": bridge["algorithm"],
            "signature": bridge["signature"],
            "appVersion": "https://web-eid.eu/web-eid-app/releases/2.5.0+0",
            "challenge": challenge,
        }


def _name(**attrs: str) -> x509.Name:
    oids = {
        "C": NameOID.COUNTRY_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "CN": NameOID.COMMON_NAME,
        "SN": NameOID.SURNAME,
        "GN": NameOID.GIVEN_NAME,
        "serialNumber": NameOID.SERIAL_NUMBER,
    }
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


class EidPki:
    """Root → Citizen CA → cards; the root also issues the RRN certificate."""

    def __init__(self, ocsp_url: str, now: dt.datetime | None = None, name: str = "Test") -> None:
        self.now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        self.ocsp_url = ocsp_url
        root_key = _key()
        root_name = _name(C="BE", CN=f"Belgium Root CA {name}")
        self.root = Issued(
            self._ca_builder(root_name, root_name, root_key, root_key, path_length=None).sign(
                root_key, hashes.SHA384()
            ),
            root_key,
        )
        self.citizen_ca = self.issue_ca(_name(C="BE", CN=f"Citizen CA {name}", serialNumber="201901"))
        self.rrn = self._issue_rrn(name)
        self.ocsp_signer = self._issue_ocsp_signer(ocsp_signing=True)
        self.ocsp_unauthorised = self._issue_ocsp_signer(ocsp_signing=False)

    # -- authorities ---------------------------------------------------------
    def _ca_builder(
        self,
        subject: x509.Name,
        issuer: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        issuer_key: ec.EllipticCurvePrivateKey,
        path_length: int | None,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - 365 * DAY)
            .not_valid_after(self.now + 10 * 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
        )

    def issue_ca(self, subject: x509.Name) -> Issued:
        key = _key()
        builder = self._ca_builder(subject, self.root.cert.subject, key, self.root.key, path_length=0)
        return Issued(builder.sign(self.root.key, hashes.SHA384()), key)

    def _leaf_builder(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        issuer: Issued,
        validity: tuple[dt.datetime, dt.datetime] | None = None,
    ) -> x509.CertificateBuilder:
        not_before, not_after = validity or (self.now - 30 * DAY, self.now + 5 * 365 * DAY)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )

    def _issue_rrn(self, name: str) -> Issued:
        key = _key()
        builder = self._leaf_builder(_name(C="BE", O="RRN", CN=f"RRN {name}"), key, self.root).add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
        return Issued(builder.sign(self.root.key, hashes.SHA384()), key)

    def _issue_ocsp_signer(self, ocsp_signing: bool) -> Issued:
        key = _key()
        usage = [ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            self._leaf_builder(_name(C="BE", CN=f"OCSP responder {ocsp_signing}"), key, self.citizen_ca)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        return Issued(builder.sign(self.citizen_ca.key, hashes.SHA384()), key)

    def authority(self) -> Authority:
        """What the fake OCSP responder needs to answer for this PKI's Citizen CA."""
        return Authority(
            ca_cert=self.citizen_ca.cert,
            signer_cert=self.ocsp_signer.cert,
            signer_key=self.ocsp_signer.key,
            unauthorised_cert=self.ocsp_unauthorised.cert,
            unauthorised_key=self.ocsp_unauthorised.key,
        )

    # -- cards ---------------------------------------------------------------
    def _card_cert(
        self,
        citizen: Citizen,
        role: str,
        ca: Issued,
        not_before: dt.datetime,
        not_after: dt.datetime,
    ) -> Issued:
        key = _key()
        subject = _name(
            C="BE",
            CN=f"{citizen.given_names.split()[0]} {citizen.surname} ({role})",
            SN=citizen.surname,
            GN=citizen.given_names,
            serialNumber=citizen.national_number,
        )
        authentication = role == "Authentication"
        builder = (
            self._leaf_builder(subject, key, ca, (not_before, not_after))
            .add_extension(
                x509.KeyUsage(
                    authentication, not authentication, False, False, False, False, False, False, False
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(self.ocsp_url)
                        ),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier("http://crl.eidpki.test/belgium.crl")],
                            None,
                            None,
                            None,
                        )
                    ]
                ),
                critical=False,
            )
        )
        if authentication:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        return Issued(builder.sign(ca.key, hashes.SHA384()), key)

    def card(
        self,
        citizen: Citizen | None = None,
        *,
        ca: Issued | None = None,
        expired: bool = False,
        file_national_number: str | None = None,
    ) -> Card:
        citizen = citizen or Citizen()
        ca = ca or self.citizen_ca
        if expired:
            not_before, not_after = self.now - 10 * 365 * DAY, self.now - DAY
        else:
            not_before, not_after = self.now - 30 * DAY, self.now + 5 * 365 * DAY
        auth = self._card_cert(citizen, "Authentication", ca, not_before, not_after)
        sign = self._card_cert(citizen, "Signature", ca, not_before, not_after)
        photo = b"\xff\xd8\xff\xe0 not really a JPEG \xff\xd9"
        data_file = self.data_file(citizen, file_national_number or citizen.national_number, photo)
        address_file = self.address_file(citizen)
        data_signature = self.rrn_sign(data_file)
        address_signature = self.rrn_sign(address_file.rstrip(b"\x00") + data_signature)
        return Card(
            citizen=citizen,
            authentication=auth,
            signature=sign,
            ca=ca,
            root=self.root,
            rrn=self.rrn,
            data_file=data_file,
            data_signature=data_signature,
            address_file=address_file,
            address_signature=address_signature,
            photo_file=photo,
        )

    def rrn_sign(self, data: bytes) -> bytes:
        """ECDSA-P384/SHA-384 DER, zero-padded to the fixed file size as on EC cards."""
        der = self.rrn.key.sign(data, ec.ECDSA(hashes.SHA384()))
        return der.ljust(SIGNATURE_FILE_SIZE, b"\x00")

    @staticmethod
    def data_file(citizen: Citizen, national_number: str, photo: bytes) -> bytes:
        begin = "01.01.2024"
        end = "01.01.2034"
        fields = [
            (1, citizen.card_number.encode()),
            (2, bytes.fromhex("534c494e33660013930d2e2e14552e19")),
            (3, begin.encode()),
            (4, end.encode()),
            (5, b"Brussel"),
            (6, national_number.encode()),
            (7, citizen.surname.encode()),
            (8, citizen.given_names.encode()),
            (9, b"J"),
            (10, b"Belg"),
            (11, b"Sint-Truiden"),
            (12, citizen.birth.encode()),
            (13, b"V"),
            (14, b""),
            (15, b"1"),
            (16, b"0"),
            (17, hashlib.sha384(photo).digest()),
        ]
        return encode_tlv(fields)

    @staticmethod
    def address_file(citizen: Citizen) -> bytes:
        tlv = encode_tlv(
            [(1, citizen.street.encode()), (2, citizen.postal_code.encode()), (3, citizen.locality.encode())]
        )
        return tlv.ljust(117, b"\x00")


# -- fixtures: one OCSP responder, PKI and card per test module ----------------------------
# Import ``responder_fixture``, ``pki_fixture``, ``card_fixture`` (and ``http_fixture``) into a
# test module; the fixtures are named ``responder``, ``pki``, ``card`` and ``http``.


@pytest.fixture(scope="module", name="responder")
def responder_fixture():
    r = OcspResponder().start()
    yield r
    r.stop()


@pytest.fixture(scope="module", name="pki")
def pki_fixture(responder):
    p = EidPki(responder.url)
    responder.add_authority(p.authority())
    return p


@pytest.fixture(scope="module", name="card")
def card_fixture(pki):
    return pki.card()


@pytest.fixture(name="http")
def http_fixture():
    """``http``: a requests session for the local bridge and responder, never through a proxy."""
    s = requests.Session()
    s.trust_env = False
    yield s
    s.close()


def reset_responder(responder: OcspResponder) -> None:
    """The module's responder as new: normal answers, no forced statuses, no requests counted."""
    responder.behaviour = "normal"
    responder.statuses.clear()
    responder.requests = 0
