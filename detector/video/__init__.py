"""Video: sample frames with OpenCV, scan each with the photo pipeline, join sightings into appearances.

decode.py       open a video, sample frames (--every SECONDS | --fps F, --max-frames N)
appearances.py  consecutive sightings of a brand -> appearances (start, end, duration, peak prominence)
scan.py         one video through a Detector: frame records, appearance records, a video record
synth.py        a synthetic clip with a known logo interval (tests and the demo)
"""
