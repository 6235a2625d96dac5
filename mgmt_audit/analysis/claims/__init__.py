"""Published numbers audited: ``mgmt-audit audit-claim`` and its literature table.

- :mod:`.metrics`: metric names, aliases and averagings; values over many confusion matrices at once.
- :mod:`.consistency`: are the printed numbers arithmetically possible together (exact enumeration;
  ``mlscorecheck`` for means of fold scores)?
- :mod:`.inference`: Clopper–Pearson intervals, the no-information rate, Fisher's test, the AUC an
  operating point implies, and the verdict on it.
- :mod:`.auc`: a reported AUC judged with :func:`mgmt_audit.analysis.verdict.judge`.
- :mod:`.audit`: one claim audited into a typed :class:`ClaimResult`.
- :mod:`.literature`: the published claims in ``data_manifests/claims/*.toml``, one row each.
- :mod:`.text`: the text, JSON and review-paragraph forms.
"""

from mgmt_audit.analysis.claims.audit import ClaimInputs, ClaimResult, audit_claim, parse_metrics

__all__ = ["ClaimInputs", "ClaimResult", "audit_claim", "parse_metrics"]
