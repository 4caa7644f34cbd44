"""Request/response shapes of the token endpoints (validation only; rules live in services)."""

from __future__ import annotations

from rest_framework import serializers

from auth_backend.core.serializers import InputSerializer
from auth_backend.tokens.services.issuing import MAX_REFRESH_TOKEN_LENGTH


class RefreshRequestSerializer(InputSerializer):
    refresh_token = serializers.CharField(max_length=MAX_REFRESH_TOKEN_LENGTH, trim_whitespace=True)


class LogoutRequestSerializer(InputSerializer):
    refresh_token = serializers.CharField(
        max_length=MAX_REFRESH_TOKEN_LENGTH,
        required=False,
        trim_whitespace=True,
        help_text="The session's refresh token. Optional when the request carries the "
        "gateway's identity assertion: then the session of the access token used "
        "is ended.",
    )


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField(default="Bearer")
    expires_in = serializers.IntegerField(help_text="Access-token lifetime in seconds.")


class TwoFactorChallengeSerializer(serializers.Serializer):
    requires_2fa = serializers.BooleanField()
    challenge_token = serializers.CharField()


class JwkSerializer(serializers.Serializer):
    kty = serializers.CharField()
    kid = serializers.CharField()
    alg = serializers.CharField()
    use = serializers.CharField()
    n = serializers.CharField(required=False)
    e = serializers.CharField(required=False)
    crv = serializers.CharField(required=False)
    x = serializers.CharField(required=False)
    y = serializers.CharField(required=False)


class JwksSerializer(serializers.Serializer):
    keys = JwkSerializer(many=True)
