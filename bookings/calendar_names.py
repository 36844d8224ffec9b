"""Day and month names that Django's own Hindi catalog spells unusually ("सितमबर", "गुरूवार").

Marked here so that `makemessages` keeps them in our catalog (locale/hi), which Django
consults before its own because LOCALE_PATHS comes first. The `when` filters and the slot
picker then print "गुरुवार 26 नवंबर 2026". Nothing imports this module at run time.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

NAMES = (
    gettext_noop("Monday"),
    gettext_noop("Thursday"),
    gettext_noop("Thu"),
    gettext_noop("September"),
    gettext_noop("November"),
    gettext_noop("December"),
    gettext_noop("dec"),
)
