"""The operator's signing key: creation (owner-only), PAdES signing of evidence PDFs, validation.

The key folder lives outside any work tree: ``--key-dir``, else ``$DCMON_KEY_DIR``, else
``~/.config/dcmon/keys``. It holds ``signing-key.pem`` (private key, mode 0600, never copied
anywhere else: not into reports, logs or the repository) and ``signing-cert.pem`` (a
self-signed X.509 certificate, public). The certificate's SHA-256 fingerprint (of its DER
encoding, as ``openssl x509 -fingerprint -sha256`` shows it) is printed in every signed
report and by ``dcmon verify``, so a regulator can pin it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

KEY_NAME = "signing-key.pem"
CERT_NAME = "signing-cert.pem"
ENV_KEY_DIR = "DCMON_KEY_DIR"
SIG_FIELD = "dcmon-signature"
CERT_YEARS = 10


def default_key_dir() -> Path:
    env = os.environ.get(ENV_KEY_DIR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dcmon" / "keys"


def key_dir_from(arg: str | None) -> Path:
    return Path(arg).expanduser() if arg else default_key_dir()


def _inside_work_tree(path: Path) -> Path | None:
    """The git work tree containing ``path`` (or the nearest existing parent), if any."""
    p = path.expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    p = p.resolve()
    for d in (p, *p.parents):
        if (d / ".git").exists():
            return d
    return None


def fingerprint(cert_der: bytes) -> str:
    """SHA-256 of the DER certificate as colon-separated upper-case hex (as openssl prints it)."""
    h = hashlib.sha256(cert_der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def normalise_fingerprint(text: str) -> str:
    h = "".join(c for c in text if c not in ": \t").upper()
    if len(h) != 64 or any(c not in "0123456789ABCDEF" for c in h):
        raise ValueError(f"a certificate fingerprint is 64 hex digits (SHA-256), optionally colon-separated: {text!r}")
    return ":".join(h[i:i + 2] for i in range(0, 64, 2))


def cert_der_from_file(path: Path) -> bytes:
    """DER bytes of a PEM or DER certificate file; ValueError naming the file."""
    from cryptography import x509
    data = Path(path).read_bytes()
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise ValueError(f"{path}: not an X.509 certificate ({e})") from None
    from cryptography.hazmat.primitives.serialization import Encoding
    return cert.public_bytes(Encoding.DER)


@dataclass
class KeyPair:
    key_path: Path
    cert_path: Path
    created: bool

    @property
    def cert_der(self) -> bytes:
        return cert_der_from_file(self.cert_path)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert_der)


def check_permissions(key_dir: Path) -> None:
    """Refuse a key folder or key file that others can read (ValueError naming it and its mode)."""
    mode = stat.S_IMODE(os.stat(key_dir).st_mode)
    if mode & 0o077:
        raise ValueError(f"{key_dir}: key folder is mode {mode:04o}; it must be owner-only (chmod 700 {key_dir})")
    kp = key_dir / KEY_NAME
    mode = stat.S_IMODE(os.stat(kp).st_mode)
    if mode & 0o077:
        raise ValueError(f"{kp}: private key is mode {mode:04o}; it must be owner-only (chmod 600 {kp})")


def init_keys(key_dir: Path, *, subject: str | None = None, force: bool = False) -> KeyPair:
    """Create an ECDSA P-256 key and a self-signed certificate in ``key_dir`` (owner-only).

    An existing pair is kept (``created`` False) unless ``force``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    key_dir = Path(key_dir)
    tree = _inside_work_tree(key_dir)
    if tree is not None:
        raise ValueError(f"{key_dir}: the key folder is inside the work tree {tree}; keep private keys out of "
                         f"repositories (use --key-dir or ${ENV_KEY_DIR} outside it)")
    kp, cp = key_dir / KEY_NAME, key_dir / CERT_NAME
    if kp.exists() and cp.exists() and not force:
        check_permissions(key_dir)
        return KeyPair(kp, cp, created=False)
    old = os.umask(0o077)
    try:
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(key_dir, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject or f"dcmon operator ({socket.gethostname()})"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dcmon evidence signing")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=365 * CERT_YEARS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING,
                                                      x509.ObjectIdentifier("1.2.840.113583.1.1.5")]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        _write_private(kp, key_pem)
        tmp = cp.with_name(f".{cp.name}.tmp")
        tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        os.chmod(tmp, 0o644)
        tmp.replace(cp)
    finally:
        os.umask(old)
    return KeyPair(kp, cp, created=True)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def sign_pdf(pdf: bytes, keys: KeyPair, *, reason: str, location: str | None = None) -> bytes:
    """PAdES baseline B-B signature over the whole document (an incremental update)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    check_permissions(keys.key_path.parent)
    signer = signers.SimpleSigner.load(str(keys.key_path), str(keys.cert_path))
    if signer is None:
        raise ValueError(f"{keys.key_path}: could not load the signing key or certificate")
    meta = signers.PdfSignatureMetadata(field_name=SIG_FIELD, subfilter=fields.SigSeedSubFilter.PADES,
                                        md_algorithm="sha256", reason=reason, location=location,
                                        certify=True, docmdp_permissions=fields.MDPPerm.NO_CHANGES)
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    out = signers.PdfSigner(meta, signer=signer).sign_pdf(w)
    return out.getvalue()


@dataclass
class SignatureCheck:
    present: bool
    intact: bool = False          # the signed bytes hash to the signed digest
    valid: bool = False           # the cryptographic signature verifies with the certificate's key
    whole_file: bool = False      # the signature covers the entire file (nothing appended)
    fingerprint: str | None = None
    subject: str | None = None
    signed_at: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.present and self.intact and self.valid and self.whole_file


def check_pdf_signature(data: bytes) -> SignatureCheck:
    """Validate the document's signature with pyHanko, trusting the signer's own certificate
    (the caller pins it by fingerprint: a self-signed certificate has no other anchor)."""
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        sigs = reader.embedded_signatures
    except (PdfReadError, ValueError, KeyError, IndexError, TypeError) as e:
        return SignatureCheck(present=False, problem=f"the PDF structure is damaged ({e})")
    if not sigs:
        return SignatureCheck(present=False)
    sig = sigs[-1]
    try:
        cert = sig.signer_cert
        fp = fingerprint(cert.dump())
        subject = cert.subject.human_friendly
    except Exception as e:  # noqa: BLE001 - a mangled CMS blob: report it, don't crash
        return SignatureCheck(present=True, problem=f"the signature cannot be read ({type(e).__name__})")
    try:
        vc = ValidationContext(trust_roots=[cert], allow_fetching=False)
        st = validate_pdf_signature(sig, vc)
    except (SignatureValidationError, PdfReadError, ValueError) as e:
        return SignatureCheck(present=True, fingerprint=fp, subject=subject, problem=str(e))
    whole = st.coverage == SignatureCoverageLevel.ENTIRE_FILE and len(sigs) == 1
    return SignatureCheck(present=True, intact=bool(st.intact), valid=bool(st.valid), whole_file=whole,
                          fingerprint=fp, subject=subject,
                          signed_at=None if st.signer_reported_dt is None else st.signer_reported_dt.isoformat(timespec="seconds"))
