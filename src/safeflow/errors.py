"""The one exception tree of safeflow.

Every failure a user can cause or meet is a :class:`SafeflowError`. Subclasses mix in the
built-in exception that fits, so ``except ValueError`` still works where it is natural.
Messages say what happened *and what to do*; tests match on their wording. A refusal never
contains the sensitive number that caused it (STYLE.md item 11).

::

    SafeflowError
    ├── InvalidParameter (ValueError)        a caller passed a bad argument
    ├── DataError (ValueError)               site data does not fit its schema
    │   ├── SchemaError                      the schema itself is wrong or does not match
    │   ├── MissingValueError                NaN / null where the schema forbids it
    │   └── OutOfBoundsError                 a value outside its declared bounds or categories
    ├── CryptoError                          a cryptographic check failed
    │   ├── InvalidKey (ValueError)          malformed or low-order public key, bad length
    │   ├── DecryptionError                  authentication tag mismatch, wrong key
    │   └── InsecureParameters (ValueError)  HE / masking parameters below 128-bit security
    ├── ConvergenceError (ArithmeticError)   a model cannot be fitted: separation, singular
    │                                        information matrix, no convergence
    ├── ProtocolError                        a protocol run cannot continue
    │   ├── EncodingOverflow (OverflowError) a value does not fit the fixed-point ring
    │   ├── TooFewSurvivors                  fewer than t sites survived: nothing is released
    │   └── SpecError                        a protocol spec file is malformed
    ├── TransportError                       a message could not be delivered or accepted
    │   ├── MalformedEnvelope (ValueError)   bytes that are not a valid envelope
    │   ├── EnvelopeTooLarge                 over the transport's size limit
    │   ├── ReplayedEnvelope                 a nonce seen before in this run
    │   ├── UnexpectedStage                  a message for another run, round, stage or party
    │   └── InsecureTransport (PermissionError)  a deployment without TLS or node authentication
    ├── ExportRefused (PermissionError)      a site's export gate refused an outgoing message
    ├── PolicyError                          the policy layer cannot decide
    │   ├── PackError (ValueError)           a policy pack is malformed (names file and rule)
    │   └── FactsError (ValueError)          facts with unknown or ill-typed fields
    ├── VerificationError                    a certificate, signature or proof does not verify
    │   └── UnpinnedApp (PermissionError)    a site refused a Flower app it does not pin
    ├── AuditError                           an audit log is inconsistent or was tampered with
    ├── BudgetExceeded (PermissionError)     a DP release would overspend a privacy budget
    └── ReleaseError                         a release cannot be used as asked
        ├── Uncertified (PermissionError)    no certificate yet: export is refused
        └── ExportDenied (PermissionError)   the policy decision does not allow export

Examples
--------
>>> import safeflow as sf
>>> try:
...     sf.Site("a", data=[1, 2], jurisdiction="CN")
... except sf.errors.SafeflowError as e:
...     print(type(e).__name__)
DataError
"""

from __future__ import annotations


class SafeflowError(Exception):
    """Root of every error safeflow raises on purpose."""


class InvalidParameter(SafeflowError, ValueError):
    """An argument has the wrong type or value; the message names the valid range."""


class DataError(SafeflowError, ValueError):
    """Site data does not fit its schema or cannot be read."""


class SchemaError(DataError):
    """The schema is inconsistent, or names columns the data does not have."""


class MissingValueError(DataError):
    """A missing value (NaN, null) where the column's policy forbids it."""


class OutOfBoundsError(DataError):
    """A value outside the column's declared bounds or categories."""


class CryptoError(SafeflowError):
    """A cryptographic operation or check failed."""


class InvalidKey(CryptoError, ValueError):
    """A key is malformed, of the wrong length, or a low-order point."""


class DecryptionError(CryptoError):
    """Authenticated decryption failed: wrong key, or the ciphertext was altered."""


class InsecureParameters(CryptoError, ValueError):
    """Cryptographic parameters below the 128-bit security level were requested."""


class ConvergenceError(SafeflowError, ArithmeticError):
    """A model cannot be fitted; the message names the likely cause and the fix."""


class ProtocolError(SafeflowError):
    """A privacy protocol run cannot continue."""


class EncodingOverflow(ProtocolError, OverflowError):
    """A value does not fit the fixed-point ring; declare tighter bounds or fewer rows."""


class TooFewSurvivors(ProtocolError):
    """Fewer sites than the threshold survived; the run is aborted and nothing released."""


class SpecError(ProtocolError):
    """A protocol specification file is malformed or inconsistent."""


class TransportError(SafeflowError):
    """A message could not be delivered or was not accepted."""


class MalformedEnvelope(TransportError, ValueError):
    """Bytes that do not parse as a safeflow envelope."""


class EnvelopeTooLarge(TransportError):
    """An envelope larger than the transport's limit."""


class ReplayedEnvelope(TransportError):
    """An envelope whose nonce was already accepted in this run."""


class UnexpectedStage(TransportError):
    """An envelope for another study, run, round, stage, sender or receiver."""


class InsecureTransport(TransportError, PermissionError):
    """A deployment would start without TLS or without node authentication."""


class _RuleError(SafeflowError):
    """A refusal that names the rule that decided and the next step."""

    def __init__(self, message: str, *, rule: str | None = None, fix: str | None = None):
        super().__init__(message)
        self.rule, self.fix = rule, fix


class ExportRefused(_RuleError, PermissionError):
    """A site's export gate refused to send a message; nothing was sent."""


class PolicyError(SafeflowError):
    """The policy layer cannot reach a decision."""


class PackError(PolicyError, ValueError):
    """A policy pack is malformed; the message names the file and the rule."""


class FactsError(PolicyError, ValueError):
    """Facts with an unknown or ill-typed field; the message names the field."""


class VerificationError(SafeflowError):
    """A certificate, signature or proof does not verify (tampered, wrong key, missing)."""


class UnpinnedApp(VerificationError, PermissionError):
    """A site refused a Flower run whose app (FAB) hash its ``site.toml`` does not pin."""


class AuditError(SafeflowError):
    """An audit log is inconsistent: rows edited, deleted, reordered or truncated."""


class BudgetExceeded(SafeflowError, PermissionError):
    """A differentially private release would overspend a privacy budget; nothing spent."""


class ReleaseError(SafeflowError):
    """A release cannot be used the way it was asked."""


class Uncertified(ReleaseError, PermissionError):
    """The release carries no certificate yet, so it may not be exported."""


class ExportDenied(ReleaseError, _RuleError, PermissionError):
    """The policy decision does not allow this output to be released; names rule and fix."""


__all__ = [
    "AuditError",
    "BudgetExceeded",
    "ConvergenceError",
    "CryptoError",
    "DataError",
    "DecryptionError",
    "EncodingOverflow",
    "EnvelopeTooLarge",
    "ExportDenied",
    "ExportRefused",
    "FactsError",
    "InsecureParameters",
    "InsecureTransport",
    "InvalidKey",
    "InvalidParameter",
    "MalformedEnvelope",
    "MissingValueError",
    "OutOfBoundsError",
    "PackError",
    "PolicyError",
    "ProtocolError",
    "ReleaseError",
    "ReplayedEnvelope",
    "SafeflowError",
    "SchemaError",
    "SpecError",
    "TooFewSurvivors",
    "TransportError",
    "Uncertified",
    "UnexpectedStage",
    "UnpinnedApp",
]
