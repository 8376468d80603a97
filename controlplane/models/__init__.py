"""Control-plane models, one module per concern."""

from .projects import ApiKey, Membership, Project, Role, Scope

__all__ = ["ApiKey", "Membership", "Project", "Role", "Scope"]
