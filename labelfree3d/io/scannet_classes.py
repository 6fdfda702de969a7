"""Class tables of ScanNet's label spaces, shared by the readers of ScanNet exports.

- NYU40 (`NYU40_NAMES`): ids 1-40 of the `nyu40id` column of ScanNet's
  `scannetv2-labels.combined.tsv`, 0 = unannotated. VoteNet's export (`_sem_label.npy`) and
  Mask3D-style 8-column `.npy` arrays carry these ids. The names are the tsv's `nyu40class`
  names, except that its misspelt "refridgerator" is written "refrigerator" (as the ScanNet-20
  benchmark spells it).
- ScanNet-20 (`SCANNET20_NAMES`): the 20 classes of ScanNet's benchmark, in the order of its
  `CLASS_LABELS`; their NYU40 ids are `SCANNET20_NYU40_IDS` (the benchmark's `VALID_CLASS_IDS`).
  Pointcept's `segment20.npy` holds the 0-based position in this list (-1 = ignore).
- ScanNet-200 (`SCANNET200_NAMES`): the 200 classes of the ScanNet200 benchmark in the order
  of `CLASS_LABELS_200` (ScanNet's `BenchmarkScripts/ScanNet200/scannet200_constants.py`, copied
  as `pointcept/datasets/preprocessing/scannet/meta_data/scannet200_constants.py` in
  Pointcept); Pointcept's `segment200.npy` holds the 0-based position (wall 0, chair 1,
  floor 2, ..., ceiling 35).

The class-agnostic protocol (UnScene3D, Segment3D) makes wall, floor and ceiling void: the
`*_VOID_IDS` tuples give those classes' ids in each space (ceiling is not a ScanNet-20 class).
"""

from __future__ import annotations

__all__ = [
    "NYU40_NAMES",
    "NYU40_VOID_IDS",
    "SCANNET20_NAMES",
    "SCANNET20_NYU40_IDS",
    "SCANNET20_VOID_IDS",
    "SCANNET200_NAMES",
    "SCANNET200_VOID_IDS",
]

# fmt: off
_NYU40 = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat",
    "clothes", "ceiling", "books", "refrigerator", "television", "paper", "towel", "shower curtain", "box",
    "whiteboard", "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)
NYU40_NAMES: dict[int, str] = {i + 1: name for i, name in enumerate(_NYU40)}
"""NYU40 class id (1-40) -> name; 0 (unannotated) is not a class."""

SCANNET20_NYU40_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
"""NYU40 id of each ScanNet-20 class, in ScanNet-20 order."""

SCANNET20_NAMES: dict[int, str] = {i: NYU40_NAMES[nyu] for i, nyu in enumerate(SCANNET20_NYU40_IDS)}
"""ScanNet-20 class index (0-19, Pointcept's `segment20`) -> name."""

_SCANNET200 = (
    "wall", "chair", "floor", "table", "door", "couch", "cabinet", "shelf", "desk", "office chair", "bed",
    "pillow", "sink", "picture", "window", "toilet", "bookshelf", "monitor", "curtain", "book", "armchair",
    "coffee table", "box", "refrigerator", "lamp", "kitchen cabinet", "towel", "clothes", "tv", "nightstand",
    "counter", "dresser", "stool", "cushion", "plant", "ceiling", "bathtub", "end table", "dining table",
    "keyboard", "bag", "backpack", "toilet paper", "printer", "tv stand", "whiteboard", "blanket",
    "shower curtain", "trash can", "closet", "stairs", "microwave", "stove", "shoe", "computer tower",
    "bottle", "bin", "ottoman", "bench", "board", "washing machine", "mirror", "copier", "basket",
    "sofa chair", "file cabinet", "fan", "laptop", "shower", "paper", "person", "paper towel dispenser",
    "oven", "blinds", "rack", "plate", "blackboard", "piano", "suitcase", "rail", "radiator", "recycling bin",
    "container", "wardrobe", "soap dispenser", "telephone", "bucket", "clock", "stand", "light",
    "laundry basket", "pipe", "clothes dryer", "guitar", "toilet paper holder", "seat", "speaker", "column",
    "bicycle", "ladder", "bathroom stall", "shower wall", "cup", "jacket", "storage bin", "coffee maker",
    "dishwasher", "paper towel roll", "machine", "mat", "windowsill", "bar", "toaster", "bulletin board",
    "ironing board", "fireplace", "soap dish", "kitchen counter", "doorframe", "toilet paper dispenser",
    "mini fridge", "fire extinguisher", "ball", "hat", "shower curtain rod", "water cooler", "paper cutter",
    "tray", "shower door", "pillar", "ledge", "toaster oven", "mouse", "toilet seat cover dispenser",
    "furniture", "cart", "storage container", "scale", "tissue box", "light switch", "crate", "power outlet",
    "decoration", "sign", "projector", "closet door", "vacuum cleaner", "candle", "plunger", "stuffed animal",
    "headphones", "dish rack", "broom", "guitar case", "range hood", "dustpan", "hair dryer", "water bottle",
    "handicap bar", "purse", "vent", "shower floor", "water pitcher", "mailbox", "bowl", "paper bag",
    "alarm clock", "music stand", "projector screen", "divider", "laundry detergent", "bathroom counter",
    "object", "bathroom vanity", "closet wall", "laundry hamper", "bathroom stall door", "ceiling light",
    "trash bin", "dumbbell", "stair rail", "tube", "bathroom cabinet", "cd case", "closet rod",
    "coffee kettle", "structure", "shower head", "keyboard piano", "case of water bottles", "coat rack",
    "storage organizer", "folded chair", "fire alarm", "power strip", "calendar", "poster", "potted plant",
    "luggage", "mattress",
)
# fmt: on
SCANNET200_NAMES: dict[int, str] = dict(enumerate(_SCANNET200))
"""ScanNet-200 class index (0-199, Pointcept's `segment200`) -> name."""


def _ids_of(table: dict[int, str], names: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(i for i, name in table.items() if name in names)


_VOID_NAMES = ("wall", "floor", "ceiling")
NYU40_VOID_IDS: tuple[int, ...] = _ids_of(NYU40_NAMES, _VOID_NAMES)  # (1, 2, 22)
SCANNET20_VOID_IDS: tuple[int, ...] = _ids_of(SCANNET20_NAMES, _VOID_NAMES)  # (0, 1): no ceiling class
SCANNET200_VOID_IDS: tuple[int, ...] = _ids_of(SCANNET200_NAMES, _VOID_NAMES)  # (0, 2, 35)
