"""The MSE live fallback: one camera's live H.264 as a fragmented MP4 over one HTTP response.

Theory of operation: ``GET /api/cameras/{id}/live.mp4`` is what the wall plays through Media Source
Extensions when WebRTC cannot connect (no RTCPeerConnection, ICE blocked by a proxy or firewall).
The handler asks the ``VideoService`` for an MSE viewer (``live_mp4``: the same subscription, GOP
first, and the same per-seat limit as WebRTC viewers, 409 ``too_many_live``; 409 ``no_picture``
when the camera sends no keyframe in time) and streams its bytes: the init segment, then one
``moof``/``mdat`` fragment per packet, as they come. The headers say what to create the
SourceBuffer with (``X-Codec: avc1.…``) and which viewer it is (``X-Viewer-Id``, for
``POST /api/live/{viewer}/stop``); nothing is cached (``Cache-Control: no-store``).

The response ends when the viewer is stopped, the service stops or the camera feed closes; when
the client goes away first, the server's disconnect ends the response and ``_Mp4Response`` closes
the stream, which unsubscribes at once (not when the generator is garbage collected). Each chunk
is sent with the server's flow control (uvicorn awaits the socket's drain above 64 kB), so a slow
client only holds the subscription's bounded queue, never a growing backlog here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from hub.web.auth import Principal
from hub.web.http import ApiRoute, params_of
from video.media_routes import READERS, TAG, CameraRef, video

MEDIA_TYPE = "video/mp4"


class _Mp4Response(StreamingResponse):
    """A streaming response that closes its generator however the response ends."""

    def __init__(self, stream: AsyncGenerator[bytes, None], headers: dict[str, str]) -> None:
        super().__init__(stream, media_type=MEDIA_TYPE, headers=headers)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stream.aclose()


async def live_mp4(request: Request, p: Principal) -> Response:
    cid = params_of(request, CameraRef).camera_id
    viewer_id, codec, stream = await video(request).live_mp4(cid, p.user.id)
    headers = {
        "X-Codec": codec,
        "X-Viewer-Id": viewer_id,
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",  # a reverse proxy must pass fragments through as they come
    }
    return _Mp4Response(stream, headers)


ROUTES: list[ApiRoute] = [
    ApiRoute(
        "GET", "/api/cameras/{camera_id:int}/live.mp4", live_mp4,
        "实时视频（MSE 备用：分片 MP4，H.264 直通）", READERS, params=CameraRef, errors=(409,),
        produces=(MEDIA_TYPE,), tag=TAG,
        description="WebRTC 无法连接时使用；响应头 X-Codec 给出 SourceBuffer 的编码，"
        "X-Viewer-Id 可用于 POST /api/live/{viewer_id}/stop；与 WebRTC 共用每坐席的实时视频上限。",
    ),
]  # fmt: skip
