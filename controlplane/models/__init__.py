"""Control-plane models, one module per concern."""

from .projects import ApiKey, Membership, Project, Role, Scope
from .routing import (
    Action,
    AuditEntry,
    Budget,
    Deployment,
    GatewayAdapter,
    GatewaySync,
    Policy,
    Route,
    RouteRevision,
    RoutingPolicyVersion,
)

__all__ = [
    "Action", "ApiKey", "AuditEntry", "Budget", "Deployment", "GatewayAdapter", "GatewaySync", "Membership", "Policy",
    "Project", "Role", "Route", "RouteRevision", "RoutingPolicyVersion", "Scope",
]
