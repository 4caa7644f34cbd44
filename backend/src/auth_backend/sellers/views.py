"""Seller endpoints under ``/api/auth/seller/`` (protected: identity from the gateway).

* ``POST apply`` -- open an application (2FA required) → 201 with the application.
* ``GET status`` -- the caller's latest application → 200, or 404 ``no_application``.
* ``POST applications/{id}/decision`` -- staff approve/reject → 200 with the application.

Errors use the project's shape (:mod:`auth_backend.core.errors`); the specific codes are in
:mod:`auth_backend.sellers.exceptions`.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth_backend.identity.callers import authenticated_user, request_identity, request_user
from auth_backend.sellers.exceptions import NoApplication
from auth_backend.sellers.selectors import latest_application_for
from auth_backend.sellers.serializers import (
    ApplicationOutputSerializer,
    ApplyInputSerializer,
    DecisionInputSerializer,
)
from auth_backend.sellers.services import decide_application, submit_application

_401 = OpenApiResponse(description="`not_authenticated`: no valid gateway identity.")


class IsStaffMember(BasePermission):
    """Staff in both places: the token's roles (as asserted by the gateway) and the account.

    The role alone could be stale (a token minted before staff status was removed); the
    account flag alone would ignore what the edge authorised.
    """

    message = "Only staff can decide seller applications."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request_user(request)
        identity = request_identity(request)
        return (
            user is not None
            and identity is not None
            and identity.has_role("staff")
            and user.is_staff
        )


class SellerApplyView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=ApplyInputSerializer,
        responses={
            201: ApplicationOutputSerializer,
            400: OpenApiResponse(
                description="`invalid`: per-field messages in `error.details.fields`."
            ),
            401: _401,
            403: OpenApiResponse(description="`two_factor_required`: enable 2FA first."),
            409: OpenApiResponse(description="`application_pending` or `already_seller`."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = ApplyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        application = submit_application(
            user=authenticated_user(request), **serializer.validated_data
        )
        return Response(
            ApplicationOutputSerializer(application).data, status=status.HTTP_201_CREATED
        )


class SellerStatusView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={
            200: ApplicationOutputSerializer,
            401: _401,
            404: OpenApiResponse(description="`no_application`: the caller never applied."),
        }
    )
    def get(self, request: Request) -> Response:
        application = latest_application_for(authenticated_user(request))
        if application is None:
            raise NoApplication()
        return Response(ApplicationOutputSerializer(application).data)


class SellerDecisionView(APIView):
    permission_classes = [IsAuthenticated, IsStaffMember]

    @extend_schema(
        request=DecisionInputSerializer,
        responses={
            200: ApplicationOutputSerializer,
            400: OpenApiResponse(description="`invalid`: bad `decision` or `note`."),
            401: _401,
            403: OpenApiResponse(
                description="`permission_denied` (not staff in both the token "
                "and the account) or `own_application`."
            ),
            404: OpenApiResponse(description="`not_found`: unknown or malformed application id."),
            409: OpenApiResponse(
                description="`already_decided`: only pending applications can be decided."
            ),
        },
    )
    def post(self, request: Request, application_id: str) -> Response:
        serializer = DecisionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        application = decide_application(
            application_id=application_id,
            actor=authenticated_user(request),
            **serializer.validated_data,
        )
        return Response(ApplicationOutputSerializer(application).data)
