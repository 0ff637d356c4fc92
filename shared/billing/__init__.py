"""Subscriptions: plans as data, the organization's effective plan and usage, feature
checks, and Stripe (Checkout, the Customer Portal, webhook events).

Limits are enforced by the database (supabase/migrations/*_billing.sql): a trigger per
limited table refuses an insert over the plan's limit with SQLSTATE PT402, which
PostgREST answers 402 and shared/errors.py maps to 402 `plan_limit`. Features are
checked here, by `require_feature`, before the work they gate.
"""

from shared.billing.plans import require_feature

__all__ = ["require_feature"]
