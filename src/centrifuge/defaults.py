"""How ``separate`` windows a video unless told otherwise: one place for the library, the command
line and the web page (this module imports nothing, so the CLI can read it before torch loads)."""

CLIP_LEN = 32  # frames per window
OVERLAP = 8  # frames shared by consecutive windows
TILE = 768  # largest processed tile side in pixels; bigger frames are tiled
TILE_OVERLAP = 32  # pixels shared by neighbouring tiles
