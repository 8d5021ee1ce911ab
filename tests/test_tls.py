import ssl
from pathlib import Path

from cryptography import x509

from receiver.tls import write_dev_certificate


def test_dev_certificate_loads_and_names_loopback(tmp_path: Path) -> None:
    cert, key = write_dev_certificate(tmp_path / "tls", "0.0.0.0")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "0.0.0.0"}
    assert key.stat().st_mode & 0o777 == 0o600
