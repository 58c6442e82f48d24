"""`credential_from_salted`: the credential Kafka's AlterUserScramCredentials upserts (the client sends
salt, iterations and SaltedPassword) is the one the broker would make from the password itself."""

from __future__ import annotations

import pytest
from logstore.broker.auth.scram import (
    Mechanism,
    ScramError,
    credential_from_salted,
    make_credential,
    salted_password,
    verify_password,
)


@pytest.mark.parametrize("mechanism", list(Mechanism))
def test_a_salted_password_makes_the_credential_the_password_makes(mechanism: Mechanism) -> None:
    salt = b"0123456789abcdef"
    salted = salted_password(mechanism, "pencil", salt, 4096)
    made = credential_from_salted(mechanism, salt, salted, 4096)
    assert made == make_credential(mechanism, "pencil", salt, 4096)
    assert verify_password(made, "pencil") and not verify_password(made, "pen")


@pytest.mark.parametrize(
    ("salt", "salted", "iterations", "words"),
    [
        (b"s", b"x" * 32, 4095, "iterations"),
        (b"s", b"x" * 32, 1_000_001, "iterations"),
        (b"", b"x" * 32, 4096, "salt"),
        (b"s", b"x" * 31, 4096, "32"),
    ],
)
def test_an_unusable_salted_credential_is_refused(
    salt: bytes, salted: bytes, iterations: int, words: str
) -> None:
    with pytest.raises(ScramError, match=words):
        credential_from_salted(Mechanism.SCRAM_SHA_256, salt, salted, iterations)
