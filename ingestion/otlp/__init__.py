"""OTLP/HTTP wire handling: reading and inflating bodies within limits, decoding and validating requests,
and encoding responses in the request's own encoding. No storage and no Django here."""
