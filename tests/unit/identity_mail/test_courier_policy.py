"""The courier's pure decisions: retry delays, what is kept of an error, what is permanent."""

from __future__ import annotations

import aiosmtplib
import pytest

from identity_service.adapters.smtp.mailer import describe_error, is_permanent
from identity_service.service.courier import CourierConfig, retry_delay


def test_retry_delay_doubles_then_caps_with_jitter() -> None:
    assert retry_delay(1, rand=lambda: 0.5) == pytest.approx(2.0)
    assert retry_delay(5, rand=lambda: 0.5) == pytest.approx(32.0)
    assert retry_delay(20, rand=lambda: 0.5) == pytest.approx(300.0)
    assert retry_delay(500, rand=lambda: 0.5) == pytest.approx(300.0)
    assert retry_delay(5, rand=lambda: 0.0) == pytest.approx(32 * 0.8)
    assert retry_delay(5, rand=lambda: 1.0) == pytest.approx(32 * 1.2)
    assert retry_delay(0, rand=lambda: 0.0) == 1.0


def test_describe_error_keeps_no_address() -> None:
    refused = aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(550, "no such user ann@uni.example", "ann@uni.example")]
    )
    assert describe_error(refused) == "SMTPRecipientsRefused: 550"
    data = aiosmtplib.SMTPDataError(554, "rejected mail for ann.lee@uni.example")
    assert describe_error(data) == "SMTPDataError: 554 rejected mail for a***@uni.example"
    assert describe_error(ConnectionRefusedError("refused")) == "ConnectionRefusedError: refused"
    assert len(describe_error(OSError("x" * 2000))) == 500


def test_only_a_refused_recipient_with_a_5xx_code_is_permanent() -> None:
    def refused(code: int) -> aiosmtplib.SMTPRecipientsRefused:
        return aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(code, "no", "a@b.example")])

    assert is_permanent(refused(550)) is True
    assert is_permanent(refused(450)) is False
    assert is_permanent(aiosmtplib.SMTPRecipientRefused(551, "no", "a@b.example")) is True
    assert is_permanent(aiosmtplib.SMTPDataError(554, "no")) is False
    assert is_permanent(aiosmtplib.SMTPConnectError("down")) is False


def test_config_refuses_a_lease_shorter_than_a_send() -> None:
    with pytest.raises(ValueError, match="lease_seconds"):
        CourierConfig(send_timeout=30, lease_seconds=60)
    with pytest.raises(ValueError):
        CourierConfig(max_attempts=0)
