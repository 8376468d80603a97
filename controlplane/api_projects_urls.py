from django.urls import path

from controlplane import api_projects

urlpatterns = [
    path("project", api_projects.ProjectView.as_view(), name="api-project"),
    path("keys", api_projects.ApiKeyListView.as_view(), name="api-keys"),
    path("keys/<int:key_id>/revoke", api_projects.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("members", api_projects.MemberListView.as_view(), name="api-members"),
    path("members/<int:member_id>", api_projects.MemberDetailView.as_view(), name="api-member"),
]
