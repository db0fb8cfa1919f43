"""The gRPC edge, the decision engine and the wiring of a decision server.

- wiring: ``bootstrap`` (the one composition root), ``server`` (start and graceful stop);
- the gRPC edge: ``servicer``, ``validation``, ``privacy`` (sensitive keys, personal data), ``status``,
  ``security`` (TLS, scoped tokens), ``metrics``, ``datadir`` (private file modes);
- one decision: ``engine``, ``campaigns``, ``keys``;
- background roles: ``learner``, ``shadow``, ``live_models`` (the MLflow registry link);
- configuration: ``config``, ``config_toml``.

The public names below resolve on first use, so ``import service.config`` loads neither gRPC nor VW.
"""
from offerbandit.lazy import lazy_attributes

__all__ = [
    "CampaignConfig",
    "DecisionEngine",
    "DecisionOutcome",
    "DecisionServer",
    "Endpoint",
    "ServerComponents",
    "ServiceConfig",
    "TlsFiles",
    "TokenTable",
    "build_server",
    "campaign_policy_toml",
    "catalog_toml",
    "load_config",
    "parse_config",
    "read_tokens",
]

_HOME_OF = {
    "CampaignConfig": "service.config",
    "DecisionEngine": "service.engine",
    "DecisionOutcome": "service.engine",
    "DecisionServer": "service.server",
    "Endpoint": "service.bootstrap",
    "ServerComponents": "service.bootstrap",
    "ServiceConfig": "service.config",
    "TlsFiles": "service.security",
    "TokenTable": "service.security",
    "build_server": "service.bootstrap",
    "campaign_policy_toml": "service.config_toml",
    "catalog_toml": "service.config_toml",
    "load_config": "service.config",
    "parse_config": "service.config",
    "read_tokens": "service.security",
}


__getattr__, __dir__ = lazy_attributes('service', globals(), _HOME_OF)
