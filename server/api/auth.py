"""Who is calling, and may they: bearer tokens, identities with roles, one policy table.

Tokens come from configuration (``PRIVSYNTH_AUTH_TOKENS_FILE``, a YAML or JSON file) and map to
an :class:`Identity`: a name (recorded as the actor in ledger and audit entries, never the
token), a role and, for members, a tenant::

    tokens:
      - identity: alice          # actor name
        role: member             # member | auditor | admin
        tenant: acme             # members only
        sha256: 9f86d0…          # SHA-256 (hex) of the token; or `token: <plain>`

* **member** of a tenant: uploads, trains, samples, scrubs ad hoc, reads budgets and ledgers —
  all only of its tenant's datasets, jobs and models; anyone else's look NOT_FOUND.
* **auditor**: reads budgets, ledgers, the audit log, model cards, jobs and scrub reports of every
  tenant, and never any text (no upload, no training, no Generate).
* **admin**: the auditor's reads plus budget-cap changes.

The legacy ``PRIVSYNTH_ADMIN_TOKEN`` (or ``_FILE``) adds one identity ``admin`` with role admin.

With no tokens file the server runs in **open mode** (the embedded/dev default, logged as a
warning at start): a call without a token is ``anonymous``, a member of tenant ``default`` that
may also read the audit log; only the admin token, when one is configured, changes caps. A
presented token that is not known is refused (UNAUTHENTICATED) in either mode.

:class:`Authenticator` is the one place that decides; the server interceptor calls
:meth:`Authenticator.authorize` before every privsynth RPC (health and reflection stay open) and
hands the identity to the servicer through the call context (:func:`identity_of`).
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privsynth.server.errors import NotFound, PermissionDenied, Reason, Unauthenticated

__all__ = [
    "ANONYMOUS",
    "DEFAULT_TENANT",
    "POLICY",
    "AuthContext",
    "Authenticator",
    "Identity",
    "Role",
    "identity_of",
    "load_tokens",
]

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
"""Tenant of open-mode callers and of rows written before tenants existed."""


class Role(enum.StrEnum):
    """What an identity may do (see the module docstring)."""

    MEMBER = "member"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. ``name`` is what the ledger and the audit log record."""

    name: str
    role: Role
    tenant: str = ""
    reads_audit_log: bool = False

    @property
    def tenant_scope(self) -> str | None:
        """The only tenant this caller sees, or None when it sees every tenant."""
        return self.tenant if self.role is Role.MEMBER else None

    def sees(self, tenant: str) -> bool:
        """Whether a resource of ``tenant`` is visible to this caller."""
        scope = self.tenant_scope
        return scope is None or scope == tenant

    def check_visible(self, tenant: str, what: str) -> None:
        """Raise NOT_FOUND (not PERMISSION_DENIED: existence is not disclosed) if hidden.

        Raises:
            NotFound: The resource belongs to another tenant.
        """
        if not self.sees(tenant):
            raise NotFound(f"{what} not found")


ANONYMOUS = Identity(
    name="anonymous", role=Role.MEMBER, tenant=DEFAULT_TENANT, reads_audit_log=True
)
"""Every tokenless caller in open mode."""

_READERS = frozenset({Role.MEMBER, Role.AUDITOR, Role.ADMIN})
_MEMBERS = frozenset({Role.MEMBER})
_AUDIT = frozenset({Role.AUDITOR, Role.ADMIN})
_ADMINS = frozenset({Role.ADMIN})

POLICY: Mapping[str, frozenset[Role]] = {
    "/privsynth.v1.Datasets/UploadDataset": _MEMBERS,
    "/privsynth.v1.Datasets/GetDataset": _READERS,
    "/privsynth.v1.Datasets/ListDatasets": _READERS,
    "/privsynth.v1.Datasets/DeleteDataset": _MEMBERS,
    "/privsynth.v1.Training/CreateTrainingJob": _MEMBERS,
    "/privsynth.v1.Training/GetTrainingJob": _READERS,
    "/privsynth.v1.Training/ListTrainingJobs": _READERS,
    "/privsynth.v1.Training/CancelTrainingJob": _MEMBERS,
    "/privsynth.v1.Training/WatchTrainingJob": _READERS,
    "/privsynth.v1.Models/GetModel": _READERS,
    "/privsynth.v1.Models/ListModels": _READERS,
    "/privsynth.v1.Models/DeleteModel": _MEMBERS,
    "/privsynth.v1.Generation/Generate": _MEMBERS,
    "/privsynth.v1.Privacy/GetBudget": _READERS,
    "/privsynth.v1.Privacy/ListLedgerEntries": _READERS,
    "/privsynth.v1.Privacy/ExportAuditLog": _AUDIT,
    "/privsynth.v1.Privacy/UpdateBudgetCap": _ADMINS,
    # The canary audit trains on the shipped public corpus only: no tenant's data, no budget.
    "/privsynth.v1.Privacy/AuditPrivacy": _READERS,
    # Ad hoc scrubbing handles the caller's own text, which auditors and admins never send.
    "/privsynth.v1.Scrubbing/AnalyzeText": _MEMBERS,
    "/privsynth.v1.Scrubbing/ScrubText": _MEMBERS,
    # Quality reports read the tenant's training records and holdout: only members start or
    # stop one; auditors may follow one and read its report as counts and scores.
    "/privsynth.v1.Evaluations/EvaluateModel": _MEMBERS,
    "/privsynth.v1.Evaluations/GetEvaluation": _READERS,
    "/privsynth.v1.Evaluations/CancelEvaluation": _MEMBERS,
    "/privsynth.v1.Evaluations/WatchEvaluation": _READERS,
    "/privsynth.v1.Evaluations/GetEvaluationReport": _READERS,
}
"""Roles allowed on each RPC. A privsynth RPC missing here is refused to everyone."""

_PROTECTED_PREFIX = "/privsynth.v1."


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _entry(i: int, raw: Any) -> tuple[str, Identity]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"tokens[{i}] must be a mapping")
    name = str(raw.get("identity") or raw.get("name") or "").strip()
    if not name:
        raise ValueError(f"tokens[{i}]: 'identity' is required")
    try:
        role = Role(str(raw.get("role", "")).lower())
    except ValueError:
        raise ValueError(
            f"tokens[{i}] ({name}): role must be one of {', '.join(r.value for r in Role)}"
        ) from None
    tenant = str(raw.get("tenant") or "").strip()
    if role is Role.MEMBER and not tenant:
        raise ValueError(f"tokens[{i}] ({name}): a member needs a 'tenant'")
    digest = str(raw.get("sha256") or "").strip().lower()
    if raw.get("token"):
        digest = _sha256(str(raw["token"]).strip())
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"tokens[{i}] ({name}): give 'sha256' (64 hex digits) or 'token'")
    identity = Identity(
        name=name, role=role, tenant=tenant if role is Role.MEMBER else "", reads_audit_log=False
    )
    return digest, identity


def load_tokens(path: Path) -> dict[str, Identity]:
    """Token hashes to identities from a YAML or JSON file (format in the module docstring).

    Raises:
        ValueError: Malformed file or entry (the message never contains a token).
    """
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data: Any = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    items: Iterable[Any]
    if isinstance(data, Mapping):
        items = data.get("tokens") or []
    elif isinstance(data, list):
        items = data
    else:
        raise ValueError(f"{path}: expected a 'tokens' list")
    table: dict[str, Identity] = {}
    for i, raw in enumerate(items):
        digest, identity = _entry(i, raw)
        if digest in table:
            raise ValueError(f"tokens[{i}] ({identity.name}): the same token appears twice")
        table[digest] = identity
    if not table:
        raise ValueError(f"{path}: no tokens configured")
    return table


class Authenticator:
    """Maps bearer tokens to identities and decides, per RPC, whether the caller may proceed.

    Args:
        tokens: SHA-256 (hex) of each token to its identity.
        open_mode: Tokenless callers become :data:`ANONYMOUS` instead of being refused.
    """

    def __init__(self, tokens: Mapping[str, Identity], *, open_mode: bool) -> None:
        self._tokens = dict(tokens)
        self.open_mode = open_mode

    @classmethod
    def from_settings(cls, settings: Any) -> Authenticator:
        """Tokens file plus the legacy admin token; open mode when there is no tokens file."""
        tokens: dict[str, Identity] = {}
        path: Path | None = settings.auth_tokens_file
        if path is not None:
            tokens.update(load_tokens(Path(path)))
        if settings.admin_token:
            tokens.setdefault(_sha256(settings.admin_token), Identity("admin", Role.ADMIN))
        return cls(tokens, open_mode=path is None)

    def authenticate(self, metadata: Iterable[tuple[str, Any]] | None) -> Identity:
        """The caller's identity from its ``authorization: Bearer …`` metadata.

        Raises:
            Unauthenticated: No token (outside open mode), a malformed header, more than one
                ``authorization`` header (ambiguous: a proxy might act on another one than we
                do), or an unknown token.
        """
        header: str | None = None
        for key, value in metadata or ():
            if key.lower() != "authorization":
                continue
            if header is not None:
                raise Unauthenticated(
                    "more than one authorization header: send exactly one 'Bearer <token>'",
                    reason=Reason.TOKEN_MALFORMED,
                )
            header = value if isinstance(value, str) else None
            if header is None:
                raise Unauthenticated(
                    "malformed authorization metadata", reason=Reason.TOKEN_MALFORMED
                )
        if header is None:
            if self.open_mode:
                return ANONYMOUS
            raise Unauthenticated(
                "this server requires a bearer token", reason=Reason.TOKEN_MISSING
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated(
                "authorization must be 'Bearer <token>'", reason=Reason.TOKEN_MALFORMED
            )
        identity = self._tokens.get(_sha256(token))
        if identity is None:
            raise Unauthenticated("unknown bearer token")
        return identity

    def authorize(self, method: str, metadata: Iterable[tuple[str, Any]] | None) -> Identity:
        """Authenticate, then check the policy for ``method``.

        Raises:
            Unauthenticated: See :meth:`authenticate`.
            PermissionDenied: The caller's role may not call ``method``.
        """
        identity = self.authenticate(metadata)
        allowed = POLICY.get(method, frozenset())
        if identity.role in allowed:
            return identity
        if method == "/privsynth.v1.Privacy/ExportAuditLog" and identity.reads_audit_log:
            return identity
        if method == "/privsynth.v1.Privacy/UpdateBudgetCap" and not any(
            i.role is Role.ADMIN for i in self._tokens.values()
        ):
            raise PermissionDenied(
                "cap changes are disabled: the server has no admin identity",
                reason=Reason.ADMIN_DISABLED,
            )
        rpc = method.rsplit("/", 1)[-1]
        raise PermissionDenied(f"role {identity.role.value} may not call {rpc}")

    @staticmethod
    def protects(method: str) -> bool:
        """Whether ``method`` needs authorisation (health and reflection do not)."""
        return method.startswith(_PROTECTED_PREFIX)


class AuthContext:
    """A servicer context that also carries the caller's identity (delegates everything else)."""

    def __init__(self, context: Any, identity: Identity) -> None:
        self._context = context
        self.identity = identity

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def identity_of(context: Any) -> Identity:
    """The identity the interceptor attached to this call.

    Raises:
        Unauthenticated: The call did not pass through the authorising interceptor.
    """
    identity = getattr(context, "identity", None)
    if not isinstance(identity, Identity):
        raise Unauthenticated("no authenticated identity on this call", reason=Reason.TOKEN_MISSING)
    return identity
