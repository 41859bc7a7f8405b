"""PII scrubbing: recognizers, strategies, the scrubber and its worker pipeline.

Also corpus file formats and the ingest of uploads.
"""
