#!/usr/bin/env python3
"""A generated, labelled out-of-domain NEUTRAL set (our own text, committed: no research data in it).

Why: the airline/MELD/SST-2 training sets have almost no neutral read speech, so a frozen or fine-tuned encoder
reads commands, digits and spelled letters as negative (GRID's "bin blue at f two now" came out negative). This
set teaches "no sentiment" for such input.

How (deterministic, no randomness outside `random.Random(SEED)`): templates x word lists, in eight families:
  grid      GRID-grammar commands: verb colour preposition letter digit adverb ("place red by g nine soon")
  digits    number read-outs ("four five seven two", "my reference is 3 8 1 9")
  spell     spelled letters / phonetic alphabet ("j o h n", "b as in bravo")
  scene     plain neutral statements in RAVDESS style ("cats are waiting by the gate")
  smalltalk greetings and fillers ("hello, can you hear me", "one moment please")
  request   neutral customer-service requests and facts ("I'd like to update my address")
  time      times, dates and quantities ("the meeting is at ten thirty on Tuesday")
  instr     neutral instructions ("press two for billing", "turn left at the second light")

Held out of TRAINING (they are evaluation): GRID's 11 transcripts in grid-av/labels.csv (listed here verbatim
so that no data file is needed) and RAVDESS's two statements. Every generated sentence equal (case-insensitive,
punctuation-stripped) to one of those is dropped.

The evaluation split (`tools/text/data/neutral_eval.csv`) is (a) 10 % of the generated sentences of every
family, disjoint from training, and (b) two families that are NEVER in training (`scene_eval` uses subjects,
verbs and places absent from the training scenes; `request_eval` is a separate hand-written list), so it also
measures generalisation beyond the templates.

Run: python tools/text/neutral_set.py   (writes tools/text/data/neutral_eval.csv; training rows come from
`train_rows()`, imported by pack_gpu.py)
"""
from __future__ import annotations

import csv
import itertools
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 17

# Evaluation sentences that must never be trained on.
GRID_EVAL = [
    "bin blue at f two now", "bin red by k seven now", "lay blue at x four now", "lay blue by c two again",
    "lay red with p nine again", "lay white by s zero again", "place white in j three please",
    "set blue in a one again", "set blue with e five now", "set white in z three now", "set white with p two soon",
]
RAVDESS_EVAL = ["Kids are talking by the door", "Dogs are sitting by the door"]

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
LETTERS = list("abcdefghijklmnopqrstuvxyz")  # GRID has no w
PHONETIC = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
            "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
            "victor", "whiskey", "x-ray", "yankee", "zulu"]


def norm(s: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", s.lower()).split())


HELD_OUT = {norm(s) for s in GRID_EVAL + RAVDESS_EVAL}


def fam_grid(r):
    verbs, colours = ["bin", "lay", "place", "set"], ["blue", "green", "red", "white"]
    preps, advs = ["at", "by", "in", "with"], ["again", "now", "please", "soon"]
    allc = [" ".join(t) for t in itertools.product(verbs, colours, preps, LETTERS, DIGITS, advs)]
    return r.sample(allc, 900)


def fam_digits(r):
    out = []
    leads = ["", "my number is ", "the code is ", "my reference is ", "it's ", "account ", "extension ",
             "the order number is ", "postcode ", "room ", "flight ", "seat ", "that was "]
    for _ in range(450):
        n = r.randint(2, 7)
        if r.random() < 0.5:
            body = " ".join(r.choice(DIGITS) for _ in range(n))
        else:
            body = " ".join(str(r.randint(0, 9)) for _ in range(n)) if r.random() < 0.5 else str(r.randint(10, 99999))
        out.append((r.choice(leads) + body).strip())
    return out


def fam_spell(r):
    out = []
    names = ["john", "maria", "kelly", "smith", "nguyen", "patel", "garcia", "olsen", "brown", "lee", "fischer",
             "dubois", "rossi", "tanaka", "kowalski", "murphy", "silva", "novak", "jensen", "ahmed"]
    leads = ["", "that's ", "it's spelled ", "spelled ", "my surname is ", "the last name is ", "capital "]
    for _ in range(200):
        nm = r.choice(names)
        out.append(r.choice(leads) + " ".join(nm))
    for _ in range(200):
        k = r.randint(1, 3)
        idx = [r.randrange(26) for _ in range(k)]
        if r.random() < 0.5:
            out.append(", ".join(f"{chr(97 + i)} as in {PHONETIC[i]}" for i in idx))
        else:
            out.append(" ".join(PHONETIC[i] for i in idx) + " " + " ".join(r.choice(DIGITS) for _ in range(2)))
    return out


SCENE_SUBJ = ["kids", "dogs", "people", "cats", "two men", "the children", "some birds", "the neighbours",
              "students", "the workers", "a few cars", "the horses", "my parents", "the guests"]
SCENE_VERB = ["are talking", "are sitting", "are standing", "are waiting", "are walking", "are parked",
              "are playing", "are reading", "are eating lunch", "are sleeping"]
SCENE_PLACE = ["by the door", "by the window", "near the gate", "in the hall", "at the corner", "on the bench",
               "in the garden", "next to the car", "by the fence", "outside the shop", "on the stairs"]


def fam_scene(r):
    allc = [f"{s} {v} {p}" for s, v, p in itertools.product(SCENE_SUBJ, SCENE_VERB, SCENE_PLACE)]
    out = []
    for s in r.sample(allc, 450):
        out.append(s[0].upper() + s[1:] + r.choice(["", ".", ""]))
    return out


def fam_smalltalk(r):
    base = ["hello", "hi there", "good morning", "good afternoon", "hello, can you hear me", "yes, I can hear you",
            "one moment please", "just a second", "hold on", "okay", "ok", "alright", "sure", "yes", "no",
            "uh huh", "hmm", "let me check", "I see", "right", "I'm here", "can you repeat that",
            "sorry, what was that", "say that again", "I'm calling about my account", "this is David speaking",
            "speaking", "who is this", "is this the right number", "go ahead", "I'm back", "let me think",
            "well", "so", "anyway", "as I said", "the weather is cloudy today", "it's Tuesday",
            "I'll check my email", "I'm at home", "I'm in the car", "we're on the second floor",
            "the line is a bit quiet", "I'll wait", "let me write that down", "got it", "noted", "fine",
            "bye", "talk later", "see you", "what's the time", "how long will it take", "is that everything"]
    out = list(base)
    for _ in range(200):
        a, b = r.sample(base, 2)
        out.append(f"{a}, {b}")
    return out


def fam_request(r):
    acts = ["I'd like to", "I want to", "I need to", "can I", "could you help me", "I'm calling to",
            "please", "how do I", "where can I", "is it possible to"]
    objs = ["update my address", "check my balance", "change my flight", "book a table for two",
            "reset my password", "add a second user", "pay my bill", "change the delivery date",
            "get a copy of my receipt", "speak to the billing team", "move my appointment to Friday",
            "upgrade my plan", "check the status of order 4821", "update the phone number on the account",
            "find the nearest branch", "transfer the call", "order a replacement card", "ask about the tariff",
            "confirm my booking", "add baggage to my reservation"]
    out = []
    for a, o in itertools.product(acts, objs):
        out.append(f"{a} {o}" + ("?" if a in ("can I", "how do I", "where can I", "is it possible to",
                                               "could you help me") else ""))
    return r.sample(out, 180)


def fam_time(r):
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    hours = ["nine", "ten", "eleven", "two", "three", "four", "half past one", "ten thirty", "noon", "8 am",
             "6 pm", "quarter to five"]
    tmpl = ["the meeting is at {h} on {d}", "the delivery is scheduled for {d}", "my appointment is on {d} at {h}",
            "we open at {h}", "the train leaves at {h}", "it's {h} now", "call me on {d}", "{d} at {h} works",
            "the package weighs {n} kilos", "it's {n} kilometres away", "there are {n} items in the box",
            "I ordered {n} of them", "the flight takes {n} hours", "it was {n} dollars"]
    out = []
    for _ in range(200):
        out.append(r.choice(tmpl).format(h=r.choice(hours), d=r.choice(days), n=r.randint(2, 40)))
    return out


def fam_instr(r):
    tmpl = ["press {k} for {x}", "turn left at the {o} light", "take the {o} exit", "enter your {x} number",
            "select option {k}", "go to settings and choose {x}", "the {x} form is on page {k}",
            "put the box on the {o} shelf", "open the {o} drawer", "click next and then {x}"]
    xs = ["billing", "support", "sales", "account", "password", "language", "delivery", "payment", "customer",
          "order"]
    ords = ["first", "second", "third", "fourth", "top", "bottom", "left", "right"]
    out = []
    for _ in range(180):
        out.append(r.choice(tmpl).format(k=r.randint(1, 9), x=r.choice(xs), o=r.choice(ords)))
    return out


FAMILIES = {"grid": fam_grid, "digits": fam_digits, "spell": fam_spell, "scene": fam_scene,
            "smalltalk": fam_smalltalk, "request": fam_request, "time": fam_time, "instr": fam_instr}

# Families only in EVALUATION (never trained on).
SCENE_EVAL = ["The lamps are standing in the corner", "Bikes are leaning against the wall",
              "The cups are on the table", "Three boats are tied at the pier", "The books are on the top shelf",
              "Pigeons are sitting on the roof", "The bus stops at the station", "Leaves are lying on the path",
              "The students are queuing at the desk", "Two trucks are parked behind the building",
              "The keys are in the drawer", "A man is reading by the lamp", "The clock is on the wall",
              "Chairs are stacked in the hall", "The shop is across the street", "The train is at platform four",
              "The boxes are by the stairs", "A woman is walking to the car", "The window faces the street",
              "Ducks are swimming near the bridge"]
REQUEST_EVAL = ["Can I change the name on my ticket?", "Please send the statement to my new address.",
                "How many days does shipping take?", "I'd like to know my account balance.",
                "Is the store open on public holidays?", "Could you tell me the reference number again?",
                "I want to switch to paperless billing.", "What documents do I need to bring?",
                "My customer number is 7 7 3 1 0.", "I'm calling about invoice number 2 0 4 8.",
                "Which terminal does the flight leave from?", "Can you spell the street name for me?",
                "I need the form for a refund request.", "Do you deliver to postcode 1 0 1 1?",
                "The parcel is size medium.", "Please put me through to the technical team.",
                "I have a question about the contract terms.", "What's the name of the agent I spoke to?",
                "Can I pay by bank transfer?", "I'm on the website right now."]


def _all():
    r = random.Random(SEED)
    train, ev = [], []
    seen = set()
    for fam, fn in FAMILIES.items():
        rows = []
        for s in fn(r):
            k = norm(s)
            if k in HELD_OUT or k in seen or not k:
                continue
            seen.add(k)
            rows.append(s)
        n_ev = max(1, len(rows) // 10)
        ev += [(s, fam) for s in rows[:n_ev]]
        train += [(s, fam) for s in rows[n_ev:]]
    for s in SCENE_EVAL:
        assert norm(s) not in seen
        ev.append((s, "scene_eval"))
    for s in REQUEST_EVAL:
        assert norm(s) not in seen
        ev.append((s, "request_eval"))
    return train, ev


def train_rows():
    """[(text, family)] for training, all labelled neutral."""
    return _all()[0]


def eval_rows():
    return _all()[1]


def main():
    train, ev = _all()
    d = HERE / "data"
    d.mkdir(exist_ok=True)
    with open(d / "neutral_eval.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label"])
        for s, _ in ev:
            w.writerow([s, "neutral"])
    fams = {}
    for _, fam in train:
        fams[fam] = fams.get(fam, 0) + 1
    print(f"train {len(train)} {fams}; eval {len(ev)} -> {d / 'neutral_eval.csv'}")


if __name__ == "__main__":
    main()
