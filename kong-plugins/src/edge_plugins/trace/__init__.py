"""PDK-free core of the ``edge-trace`` plugin (W3C Trace Context at the edge).

Each module is one concept, unit-tested without Kong or RPC:

* :mod:`.traceparent`, :mod:`.tracestate`, :mod:`.b3` — parsing the incoming headers exactly
  as their specifications say;
* :mod:`.propagation` — which incoming context is trusted, and what goes upstream;
* :mod:`.sampling` — head sampling (parent-based, ratio on the trace id's random bits);
* :mod:`.request_id` — accepting or replacing the client's request id;
* :mod:`.access` — the access phase's whole decision as one pure function;
* :mod:`.pending` — what access hands to the log phase (process-wide, bounded);
* :mod:`.span` — the gateway server span built from ``kong.log.serialize()``;
* :mod:`.otlp` — OTLP/protobuf encoding; :mod:`.export` — the batch exporter;
* :mod:`.schema` — every setting once: Kong's schema, defaults, ranges, descriptions;
* :mod:`.config`, :mod:`.metrics`, :mod:`.ids`.
"""
