"""The sentences of the demo corpus, each with a content question answerable from its words.

Two kinds: emotionally neutral statements (the words say nothing about how the speaker feels, so only
the voice can) and good or bad news (every sentence is spoken in every emotion, so tone and words agree
in some clips and conflict in others). Sentences never cross splits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sentence:
    """One sentence and its content question.

    Args:
        id: short id used in keys ("s01").
        text: the transcript (what espeak-ng reads).
        sentiment: "neutral" | "positive" | "negative" (what the words alone convey).
        split: "train" | "val" | "test".
        question: a question answerable from the words alone.
        answer: its short answer.
    """

    id: str
    text: str
    sentiment: str
    split: str
    question: str
    answer: str


_NEUTRAL = {
    "train": [
        ("The train leaves the station at nine in the morning.", "When does the train leave the station?", "At nine in the morning."),
        ("The meeting has been moved to the second floor.", "Where has the meeting been moved?", "To the second floor."),
        ("Please put the blue folder on the kitchen table.", "Where should the blue folder go?", "On the kitchen table."),
        ("The library closes at six on weekdays.", "When does the library close on weekdays?", "At six."),
        ("There are twelve chairs in the room next door.", "How many chairs are in the room next door?", "Twelve."),
        ("The bus to the airport takes about forty minutes.", "How long does the bus to the airport take?", "About forty minutes."),
        ("I will send the report to you on Monday.", "When will the report be sent?", "On Monday."),
        ("The shop on the corner sells bread and milk.", "What does the shop on the corner sell?", "Bread and milk."),
        ("My brother lives in a small town near the coast.", "Where does the brother live?", "In a small town near the coast."),
        ("The package should arrive by Thursday afternoon.", "When should the package arrive?", "By Thursday afternoon."),
        ("We need three more boxes for the books.", "How many more boxes are needed?", "Three."),
        ("The window in the office faces the river.", "What does the office window face?", "The river."),
        ("Turn left after the bridge and park behind the school.", "Where should you park?", "Behind the school."),
        ("The new printer is next to the front desk.", "Where is the new printer?", "Next to the front desk."),
        ("She usually takes the early train to work.", "Which train does she usually take to work?", "The early train."),
        ("The form needs a signature on the last page.", "What does the form need on the last page?", "A signature."),
        ("Dinner is at seven, and the table is for four.", "How many people is the table for?", "Four."),
        ("The store moved its opening time to eight.", "What is the new opening time of the store?", "Eight."),
        ("He painted the fence white last summer.", "What color did he paint the fence?", "White."),
        ("The keys are in the drawer under the phone.", "Where are the keys?", "In the drawer under the phone."),
        ("Our class meets in room fourteen on Tuesdays.", "Which room does the class meet in?", "Room fourteen."),
        ("The weather report says it will be cloudy tomorrow.", "What will the weather be tomorrow?", "Cloudy."),
        ("I bought two tickets for the evening show.", "How many tickets were bought?", "Two."),
        ("The tea is on the top shelf in the cupboard.", "Where is the tea?", "On the top shelf in the cupboard."),
        ("The doctor will call you back after lunch.", "When will the doctor call back?", "After lunch."),
        ("The parcel was left at the door of the neighbor.", "Where was the parcel left?", "At the door of the neighbor."),
        ("We are painting the hallway a light gray.", "What color is the hallway being painted?", "A light gray."),
        ("The flight to Boston leaves from gate nine.", "Which gate does the flight to Boston leave from?", "Gate nine."),
    ],
    "val": [
        ("The car is parked on the third level of the garage.", "Where is the car parked?", "On the third level of the garage."),
        ("The plant on the desk needs water twice a week.", "When does the plant need water?", "Twice a week."),
        ("The lecture starts at ten in the main hall.", "Where is the lecture?", "In the main hall."),
        ("He ordered a sandwich and a glass of water.", "What was ordered?", "A sandwich and a glass of water."),
    ],
    "test": [
        ("The museum opens at ten on Saturday mornings.", "What does the speaker say about Saturday mornings?", "The museum opens at ten."),
        ("The cups are kept in the cabinet by the sink.", "Where are the cups kept?", "In the cabinet by the sink."),
        ("My sister works at the bank on Main Street.", "Where does the sister work?", "At the bank on Main Street."),
        ("The shuttle stops in front of the hotel every hour.", "Where is the shuttle every hour?", "In front of the hotel."),
        ("There are five apples in the bowl on the counter.", "How many apples are in the bowl?", "Five."),
        ("The train to the city leaves from platform two.", "Which platform does the train to the city leave from?", "Platform two."),
        ("The letter was sent to the old address.", "Where was the letter sent?", "To the old address."),
        ("We moved the sofa closer to the window.", "Where was the sofa moved?", "Closer to the window."),
        ("The bakery is across the street from the park.", "Where is the bakery?", "Across the street from the park."),
        ("The meeting notes are in the shared folder.", "Where are the meeting notes?", "In the shared folder."),
    ],
}

_POSITIVE = {
    "train": [
        ("I just got the job I wanted so much.", "What did the speaker just get?", "The job they wanted."),
        ("We won the final game of the season.", "What did they win?", "The final game of the season."),
        ("My sister had a healthy baby girl this morning.", "What did the sister have this morning?", "A healthy baby girl."),
        ("The doctor said the test results are perfect.", "What did the doctor say about the test results?", "That they are perfect."),
        ("Our team finished the project a week early.", "When did the team finish the project?", "A week early."),
        ("I passed the exam with the highest grade in class.", "How did the speaker do on the exam?", "They passed with the highest grade in class."),
    ],
    "val": [
        ("They gave me a prize for my garden.", "What was the prize for?", "The garden."),
    ],
    "test": [
        ("My best friend is coming home after two years away.", "Which friend is coming home?", "The best friend."),
        ("The bank approved our loan for the new house.", "What was approved by the bank?", "The loan for the new house."),
    ],
}

_NEGATIVE = {
    "train": [
        ("My dog died last night.", "What happened last night?", "The dog of the speaker died."),
        ("I lost my job this morning.", "What did the speaker lose this morning?", "Their job."),
        ("The house burned down while we were away.", "What happened to the house?", "It burned down."),
        ("They cancelled the trip we planned for a year.", "What was cancelled?", "The trip they planned for a year."),
        ("Someone stole my bike from in front of the school.", "What was stolen?", "The bike of the speaker."),
        ("The doctor said the tests came back bad.", "How did the tests come back?", "Bad."),
    ],
    "val": [
        ("Our flight was cancelled and we missed the wedding.", "What was missed?", "The wedding."),
    ],
    "test": [
        ("My grandmother is very sick in the hospital.", "Where is the grandmother?", "In the hospital."),
        ("The storm destroyed the roof of our house.", "What was destroyed by the storm?", "The roof of the house."),
    ],
}


def all_sentences() -> list[Sentence]:
    """Every sentence with a stable id, in a fixed order (neutral, positive, negative; train, val, test)."""
    out: list[Sentence] = []
    for sentiment, table in (("neutral", _NEUTRAL), ("positive", _POSITIVE), ("negative", _NEGATIVE)):
        for split in ("train", "val", "test"):
            for text, question, answer in table[split]:
                out.append(Sentence(f"s{len(out) + 1:02d}", text, sentiment, split, question, answer))
    return out
