"""The camera simulator: looping pre-encoded H.264 cameras and a live clock over RTSP.

Used by the tests, the demo (``make run``) and the benchmark in place of real cameras. Three parts:
``clips`` encodes the test clips once with PyAV (in the venv), ``rtsp_server`` serves them with
GstRtspServer under Debian's ``/usr/bin/python3`` (which has ``gi``), and ``control`` runs that
server as a subprocess from asyncio (``CameraSimulator``). ``python -m video.simulator`` runs one by
hand. Only ``clips`` and ``control`` are imported in the venv; ``rtsp_server`` is a script.
"""
