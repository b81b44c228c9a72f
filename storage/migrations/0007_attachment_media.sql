-- Video evidence (issue 9): a snapshot's MP4 clip (kind 'clip', copied from the camera's packets) and
-- uploaded MP4 video (kind 'video'); and, for pictures taken from a camera, which camera and when the
-- picture was captured (the attachment's own created_at is when it was stored).

ALTER TABLE attachments DROP CONSTRAINT attachments_kind_check;
ALTER TABLE attachments ADD CONSTRAINT attachments_kind_check
    CHECK (kind IN ('photo', 'audio', 'snapshot', 'document', 'video', 'clip'));
ALTER TABLE attachments
    ADD COLUMN camera_id integer REFERENCES cameras (id) ON DELETE SET NULL,
    ADD COLUMN captured_at timestamptz,
    ADD CONSTRAINT attachments_camera_capture CHECK (camera_id IS NULL OR captured_at IS NOT NULL);
