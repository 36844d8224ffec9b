"""Every action on bookings. Views, the API, commands and tasks call these; nothing else
holds booking rules.

Each status change goes through `transitions.booking_transition`: a transaction, the row
re-read under a lock, the lifecycle table checked, the row saved with `update_fields`, a
`BookingEvent` written, and the emails queued for after commit. Nothing else assigns
`Booking.status`.

One module per area; every public function is available as `bookings.services.<name>`:

- transitions: the transition path and the small rule helpers every action shares
- requests: a client's request and its verification; bookings made by staff
- decisions: approve, reject, complete, no-show, cancel; resending emails
- availability: slots, weekly hours, blocked periods
- payments: starting, confirming, failing and refunding payments; the payment window
- rescheduling: moving a booking to another slot
- waitlist: freed slots and the waitlist
- session_types: what clients book, and what of it is fixed by what uses it
- reminders: reminders and the counsellors' daily summary
- privacy: anonymisation, retention, erasure and export
"""

from bookings.services.availability import *  # noqa: F403
from bookings.services.decisions import *  # noqa: F403
from bookings.services.payments import *  # noqa: F403
from bookings.services.privacy import *  # noqa: F403
from bookings.services.reminders import *  # noqa: F403
from bookings.services.requests import *  # noqa: F403
from bookings.services.rescheduling import *  # noqa: F403
from bookings.services.session_types import *  # noqa: F403
from bookings.services.transitions import *  # noqa: F403
from bookings.services.waitlist import *  # noqa: F403
