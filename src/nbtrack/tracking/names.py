"""Readable run names like MLflow's (``brave-owl-417``) for runs started without one."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber bold brave bright calm clever crisp daring eager fair fierce gentle glad grand "
    "honest jolly keen kind lively loud lucky merry mighty nimble noble polite proud quick "
    "quiet rare sharp shiny silent smart snappy steady sunny swift tidy upbeat vivid warm wise"
).split()
_NOUNS = (
    "ant bass bat bear bee bird boar cat colt crab crow deer dove duck eel elk finch fox frog "
    "gnu goat hare hawk hen ibis jay koala lark lion lynx mole moth newt owl ox panda pug "
    "ram robin seal shark sloth snail stork swan toad trout vole whale wolf wren yak zebra"
).split()


def random_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(100, 999)}"
