"""API for the caller's project: its settings, API keys and members (admin), thin over the services."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane import projects as project_services
from controlplane.apikeys import issue_key, revoke_key
from controlplane.models import ApiKey, Membership, Project, Role, Scope
from controlplane.permissions import HasProjectRole, project_access


def _raise_validation(exc: DjangoValidationError) -> None:
    raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


class ProjectSerializer(serializers.ModelSerializer):
    id = serializers.CharField(read_only=True)

    class Meta:
        model = Project
        fields = ["id", "slug", "name", "tenant_id", "created_at", "content_capture", "client_cost_wins",
                  "ingest_rate_limit", "pii_extra_patterns"]
        read_only_fields = ["id", "slug", "tenant_id", "created_at"]


class ProjectView(APIView):
    permission_classes = [HasProjectRole]
    read_role = Role.VIEWER
    write_role = Role.ADMIN

    @extend_schema(responses=ProjectSerializer, summary="The caller's project and its settings")
    def get(self, request: Request) -> Response:
        return Response(ProjectSerializer(project_access(request).project).data)

    @extend_schema(request=ProjectSerializer, responses=ProjectSerializer, summary="Change project settings (admin)")
    def patch(self, request: Request) -> Response:
        serializer = ProjectSerializer(project_access(request).project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            project = project_services.update_project(project_access(request).project, dict(serializer.validated_data))
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return Response(ProjectSerializer(project).data)


class ApiKeySerializer(serializers.ModelSerializer):
    id = serializers.CharField(read_only=True)
    active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at", "active"]


class NewApiKeySerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), min_length=1)


class IssuedApiKeySerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; only its hash is stored.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]


class ApiKeyListView(APIView):
    permission_classes = [HasProjectRole]
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(responses=ApiKeySerializer(many=True), summary="List the project's API keys (admin)")
    def get(self, request: Request) -> Response:
        keys = ApiKey.objects.filter(project=project_access(request).project)
        return Response(ApiKeySerializer(keys, many=True).data)

    @extend_schema(request=NewApiKeySerializer, responses={201: IssuedApiKeySerializer},
                   summary="Issue an API key; the secret is in this response only")
    def post(self, request: Request) -> Response:
        serializer = NewApiKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request.user if isinstance(request.user, AbstractBaseUser) and request.user.pk else None
        issued = issue_key(project_access(request).project, serializer.validated_data["scopes"],
                           name=serializer.validated_data["name"], created_by=user)
        data = dict(ApiKeySerializer(issued.api_key).data)
        data["secret"] = issued.secret
        return Response(data, status=status.HTTP_201_CREATED)


class ApiKeyRevokeView(APIView):
    permission_classes = [HasProjectRole]
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(request=None, responses=ApiKeySerializer, summary="Revoke an API key (admin)")
    def post(self, request: Request, key_id: int) -> Response:
        key = ApiKey.objects.filter(project=project_access(request).project, pk=key_id).first()
        if key is None:
            raise NotFound("No such API key in this project.")
        revoke_key(key)
        return Response(ApiKeySerializer(key).data)


class MemberSerializer(serializers.ModelSerializer):
    id = serializers.CharField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "role"]


class NewMemberSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MemberListView(APIView):
    permission_classes = [HasProjectRole]
    read_role = Role.VIEWER
    write_role = Role.ADMIN

    @extend_schema(responses=MemberSerializer(many=True), summary="Members of the project and their roles")
    def get(self, request: Request) -> Response:
        members = Membership.objects.select_related("user").filter(project=project_access(request).project)
        return Response(MemberSerializer(members.order_by("user__username"), many=True).data)

    @extend_schema(request=NewMemberSerializer, responses={201: MemberSerializer}, summary="Add a member (admin)")
    def post(self, request: Request) -> Response:
        serializer = NewMemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            membership = project_services.add_member(project_access(request).project, **serializer.validated_data)
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(APIView):
    permission_classes = [HasProjectRole]
    read_role = Role.VIEWER
    write_role = Role.ADMIN

    def _membership(self, request: Request, member_id: int) -> Membership:
        membership = Membership.objects.select_related("user").filter(
            project=project_access(request).project, pk=member_id).first()
        if membership is None:
            raise NotFound("No such member in this project.")
        return membership

    @extend_schema(request=RoleSerializer, responses=MemberSerializer, summary="Change a member's role (admin)")
    def patch(self, request: Request, member_id: int) -> Response:
        serializer = RoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            membership = project_services.change_role(self._membership(request, member_id),
                                                      serializer.validated_data["role"])
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return Response(MemberSerializer(membership).data)

    @extend_schema(request=None, responses={204: None}, summary="Remove a member (admin)")
    def delete(self, request: Request, member_id: int) -> Response:
        try:
            project_services.remove_member(self._membership(request, member_id))
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


