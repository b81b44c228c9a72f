"""Camera ingest: one session per camera however many consumers, behind a small ``Source`` interface.

- ``source``: the interface (``Source``, ``StreamInfo``, ``VideoPacket``, ``SourceError`` + reasons);
- ``rtsp``: ``RtspSource`` (PyAV demux in a worker thread) and ``probe`` (RTSP DESCRIBE health check);
- ``backoff``: the pure reconnect and stall policies;
- ``gop``: the pure GOP cache and per-subscriber queue policy;
- ``camera``: ``CameraFeed`` (open on demand, linger, reconnect forever, fan-out);
- ``thumbnails``: keyframe-only JPEG thumbnails and full-size snapshots;
- ``manager``: ``IngestManager`` (feeds by camera id, probes of unwatched cameras, statuses).
"""
