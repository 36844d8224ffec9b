"""Hindi formats: Django's, plus Indian digit grouping for prices (₹1,23,456)."""

from django.conf.locale.hi.formats import *  # noqa: F403

NUMBER_GROUPING = (3, 2, 0)
