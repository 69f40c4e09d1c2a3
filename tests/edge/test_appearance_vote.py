"""One appearance per entity across its alerts: a vote over its track, kept once spoken."""

from __future__ import annotations

from vigil360.edge.appearance_vote import AppearanceVotes, compact_phrase


def test_majority_over_the_track_not_the_latest_frame():
    votes = AppearanceVotes()
    for _ in range(8):
        votes.observe("e1", "red", "blue", "person")
    for _ in range(3):  # shading turns the top grey for a few frames
        votes.observe("e1", "grey", "black", "person")
    assert votes.phrase("e1") == "person in red"


def test_spoken_phrase_stays_for_the_entity_until_the_caption():
    votes = AppearanceVotes()
    for _ in range(4):
        votes.observe("e1", "red", "blue", "person")
    first = votes.speak("e1")
    for _ in range(20):  # the majority later swings to black
        votes.observe("e1", "black", "black", "person")
    assert votes.speak("e1") == first == "person in red", "the listener hears the same runner"
    votes.caption("e1", "a man in a red hoodie")
    assert votes.speak("e1") == "a man in a red hoodie", "the VLM caption replaces it once"
    assert votes.phrase("e2") == "moving object"


def test_unknown_colours_never_win():
    votes = AppearanceVotes()
    for _ in range(5):
        votes.observe("e1", "unknown", "unknown", "moving object")
    votes.observe("e1", "green", "green", "person")
    assert votes.phrase("e1") == "person in green"


def test_compact_phrases():
    assert compact_phrase("red", "blue", "person") == "person in red"
    assert compact_phrase("red", "blue", "person", verbose=True) == "person in a red top and blue trousers"
    assert compact_phrase("white", "white", "vehicle") == "white vehicle"
    assert compact_phrase("red", "red", "small object") == "small object"
    assert compact_phrase("unknown", "unknown", "person") == "person"


def test_forget_bounds_memory():
    votes = AppearanceVotes()
    votes.observe("e1", "red", "red", "person")
    votes.forget({"e1"})
    assert votes.phrase("e1") == "moving object"
    votes.observe("e2", "red", "red", "person")
    votes.observe("e3", "blue", "blue", "person")
    votes.keep({"e3"})
    assert votes.phrase("e2") == "moving object" and votes.phrase("e3") == "person in blue"
