"""Request validation and response shapes of the seller endpoints (no business rules)."""

from __future__ import annotations

from urllib.parse import urlsplit

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from auth_backend.core.openapi import HTTPS_URL_PATTERN
from auth_backend.core.serializers import InputSerializer
from auth_backend.sellers.models import SellerApplication, SellerType
from auth_backend.sellers.services import Decision


@extend_schema_field({"type": "string", "pattern": HTTPS_URL_PATTERN})
class PortfolioUrlField(serializers.URLField):
    """An https:// URL without credentials, or blank (validate_portfolio_url)."""


class ApplyInputSerializer(InputSerializer):
    business_name = serializers.CharField(min_length=2, max_length=200)
    seller_type = serializers.ChoiceField(choices=SellerType.choices)
    motivation = serializers.CharField(min_length=20, max_length=2000)
    portfolio_url = PortfolioUrlField(max_length=500, required=False, allow_blank=True, default="")

    def validate_portfolio_url(self, value: str) -> str:
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme.lower() != "https":
            raise serializers.ValidationError("Enter an https:// URL.", code="https_required")
        if parts.username or parts.password:
            raise serializers.ValidationError(
                "The URL must not contain credentials.", code="invalid"
            )
        return value


class DecisionInputSerializer(InputSerializer):
    decision = serializers.ChoiceField(choices=[d.value for d in Decision])
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ApplicationOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = SellerApplication
        fields = [
            "id",
            "status",
            "business_name",
            "seller_type",
            "motivation",
            "portfolio_url",
            "submitted_at",
            "decided_at",
            "decision_note",
        ]
        read_only_fields = fields
