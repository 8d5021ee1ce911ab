"""Workers that move events from the intake to the sinks, in order per room.

Events taken from the intake are routed (enriched first when enrichment is on; then in
lanes by room, so a room's events stay in order and a slow lookup holds back only its
lane) and queued in each routed sink's lane for their room. A sink has ``pipeline.lanes``
lanes, or one when it confirms a whole batch at once (a file). A lane publishes what has
queued in it as one batch, in order, and retries what failed before anything after it:
a room's events keep their order, and a sink that is down holds back only its own lanes.
The intake entry is acked when every routed sink confirmed the event or dead-lettered it.

Whatever one event does (a body that does not decode, a lookup or a route that raises, a
destination that cannot be rendered, a sink that raises something unexpected) ends that
event's way at that stage, in a dead letter that says why: it never stops a lane, nor
another room's events.
"""

from receiver.pipeline.core import Enrich, Pipeline
from receiver.pipeline.work import UNROUTED, DeadLetters

__all__ = ["UNROUTED", "DeadLetters", "Enrich", "Pipeline"]
