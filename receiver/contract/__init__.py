"""The consumers' contract: typed envelope models, their JSON Schemas, the AsyncAPI document."""

from receiver.contract.models import ENVELOPE_MODELS, Envelope
from receiver.contract.schemas import SCHEMA_NAMES, schema_document, schema_documents

__all__ = ["ENVELOPE_MODELS", "SCHEMA_NAMES", "Envelope", "schema_document", "schema_documents"]
