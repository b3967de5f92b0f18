"""Whether a mail's acknowledgement would be backscatter: ``withheld_acknowledgement``.

An acknowledgement goes to the opening mail's From, which anyone can forge: answering
every mail would let the desk mail whoever a spammer names. It is withheld when the relay
stamped a failing SPF or DMARC check on the mail, and, with
``ENGINE_NOTIFY_ACK_UNKNOWN_SENDERS=false``, when the customer directory does not know the
sender. Pure: the notifier counts and skips what this withholds.
"""

from __future__ import annotations

from engine.contract import Channel, TicketState
from engine.contract.customers import CustomerDirectory
from engine.metrics import AckWithheld


def withheld_acknowledgement(
    ticket: TicketState, customers: CustomerDirectory, ack_unknown_senders: bool
) -> AckWithheld | None:
    """Why the acknowledgement of ``ticket`` must not be sent, or None."""
    if ticket.channel is not Channel.EMAIL:
        return None  # an alarm's acknowledgement goes to the customer's own contacts
    if ticket.requester_failed_checks:
        return AckWithheld.SENDER_FAILED_CHECKS
    if not ack_unknown_senders and customers.lookup(ticket.requester) is None:
        return AckWithheld.UNKNOWN_SENDER
    return None
