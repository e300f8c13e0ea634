"""Admin screens: messages (built for millions of rows), templates, batches, DLT identifiers,
suppressions.

Importing this package registers them with the default admin site.
"""

from __future__ import annotations

from .batch_admin import SmsBatchAdmin
from .campaign_admin import CampaignAdmin
from .dlt_admin import DltEntityAdmin, SenderIdAdmin
from .message_admin import SmsMessageAdmin
from .pagination import CappedCountPaginator
from .suppression_admin import SuppressionAdmin
from .template_admin import SmsTemplateAdmin

__all__ = [
    "CampaignAdmin",
    "CappedCountPaginator",
    "DltEntityAdmin",
    "SenderIdAdmin",
    "SmsBatchAdmin",
    "SmsMessageAdmin",
    "SmsTemplateAdmin",
    "SuppressionAdmin",
]

# The reports page and CSV exports ("Reports" in the app's admin index).
from ..reports.admin import SmsReportAdmin  # noqa: F401
