"""Why a seller-application operation was refused.

They are DRF exceptions, so the API renders them in the project's error shape with these
codes; the Django admin catches them and shows the message.
"""

from __future__ import annotations

from rest_framework import exceptions, status


class SellerApplicationError(exceptions.APIException):
    """Base class: every refusal the seller services raise."""


class TwoFactorRequired(SellerApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "two_factor_required"
    default_detail = "Enable two-factor authentication before applying to sell."


class ApplicationPending(SellerApplicationError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "application_pending"
    default_detail = "You already have a seller application awaiting a decision."


class AlreadySeller(SellerApplicationError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "already_seller"
    default_detail = "This account is already a seller."


class AlreadyDecided(SellerApplicationError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "already_decided"
    default_detail = "This application has already been decided."


class ApplicationNotFound(SellerApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"
    default_detail = "Seller application not found."


class NoApplication(SellerApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "no_application"
    default_detail = "You have not applied to become a seller."


class NotStaff(SellerApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "permission_denied"
    default_detail = "Only staff can decide seller applications."


class OwnApplication(SellerApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "own_application"
    default_detail = "Staff cannot decide their own seller application."
