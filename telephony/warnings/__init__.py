"""Voice warnings: speakers, clips, playing and talking to street loudspeakers, schedules."""
