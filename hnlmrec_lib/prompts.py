"""The three system prompts of App. E (v2) — S_v, S_u, S_H — adapted per dataset domain.

The paper's prompts are written for Yelp businesses; the wording below keeps their
structure (instructions, JSON input description, JSON answer with ``reasoning``) and
swaps the domain noun. A ``Prompt`` renders either as chat messages (instruction-tuned
models with a chat template) or as a few-shot completion text for base models, whose
answer is primed with the opening of the JSON object.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

DOMAINS = {
    # dataset -> (singular noun, plural noun, attribute description)
    "ml-100k": ("movie", "movies", '"title": "the title of the movie", "year": "release year", '
                '"genres": "genres of the movie"'),
    "amazon2018": ("product", "products", '"title": "the name of the product", '
                   '"categories": "several tags describing the product"'),
    "amazon2023": ("product", "products", '"title": "the name of the product", '
                   '"categories": "several tags describing the product"'),
    "yelp": ("business", "businesses", '"name": "the name of the business", '
             '"city": "city where the business is located", "categories": "several tags"'),
}


def domain(dataset: str) -> tuple[str, str, str]:
    return DOMAINS.get(dataset, DOMAINS["amazon2018"])


@dataclass
class Prompt:
    """One LLM request: a system instruction, the input, and the expected JSON keys."""

    system: str
    user: str
    keys: tuple[str, ...]
    examples: list[tuple[str, str]] = field(default_factory=list)  # few-shot (input, answer)

    def messages(self) -> list[dict]:
        """Chat form: the system instruction, the worked examples as earlier turns, the input.

        Small chat models (SmolLM2-135M) tend to echo the input JSON without a worked example.
        """
        turns = [{"role": "system", "content": self.system}]
        for inp, answer in self.examples:
            turns += [{"role": "user", "content": inp}, {"role": "assistant", "content": answer}]
        return turns + [{"role": "user", "content": self.user}]

    @property
    def primer(self) -> str:
        """Opening of the answer given to base models so they start the JSON object."""
        return '{"' + self.keys[0] + '": "'

    def completion_text(self) -> str:
        """Few-shot completion text for base (non-chat) models, ending with the primer."""
        parts = [self.system.strip(), ""]
        for inp, answer in self.examples:
            parts += [f"Input: {inp}", f"Answer: {answer}", ""]
        parts += [f"Input: {self.user}", f"Answer: {self.primer}"]
        return "\n".join(parts)


def item_profile_prompt(dataset: str, item_info: dict, reviews: list[str]) -> Prompt:
    """S_v with D_v = {T, Atr., R_v}, Eq. 2 (v2)."""
    noun, _, attrs = domain(dataset)
    system = (
        f"You will serve as an assistant to help me summarize which types of users would enjoy "
        f"a specific {noun}. I will provide you with the basic information of that {noun} in "
        f"JSON format ({{{attrs}}}) and some user feedback as a list (empty if there is none).\n"
        f'Answer in JSON format: {{"summarization": "a summarization of what types of users '
        f'would enjoy this {noun}", "reasoning": "briefly explain your reasoning"}}. '
        f"Write the summarization as one sentence of at most 25 words."
    )
    user = json.dumps({**item_info, "feedback": reviews}, ensure_ascii=False)
    example = (
        json.dumps({"title": "Jurassic Park", "year": 1993, "genres": "Action, Adventure, Sci-Fi",
                    "feedback": []}),
        '{"summarization": "Viewers who enjoy thrilling adventure blockbusters with dinosaurs, '
        'special effects and suspense.", "reasoning": "An action sci-fi adventure film."}',
    ) if dataset == "ml-100k" else (
        json.dumps({"title": "Wooden Train Set", "categories": "Toys, Trains", "feedback": []}),
        '{"summarization": "Parents of young children who like classic, durable building '
        'toys.", "reasoning": "A wooden train toy for kids."}',
    )
    return Prompt(system, user, ("summarization", "reasoning"), [example])


def user_profile_prompt(dataset: str, demographics: str, interacted: list[dict]) -> Prompt:
    """S_u with D_u = {R_u, P_v} of TRAIN interactions only, Eq. 3 (v2)."""
    noun, plural, _ = domain(dataset)
    system = (
        f"You will serve as an assistant to help me determine which types of {plural} a "
        f"specific user is likely to enjoy. I will provide the user's information and the "
        f"{plural} the user liked, each in JSON format with \"title\", \"description\" (what "
        f"types of users like it) and \"rating\" or \"review\".\n"
        f'Answer in JSON format: {{"summarization": "a summarization of what types of {plural} '
        f'this user is likely to enjoy", "reasoning": "briefly explain your reasoning"}}. '
        f"Write the summarization as one sentence of at most 25 words."
    )
    user = json.dumps({"user": demographics, f"liked {plural}": interacted}, ensure_ascii=False)
    example = (
        json.dumps({"user": "age 30, F, engineer", f"liked {plural}": [
            {"title": "Alien (1979)", "description": "Fans of tense sci-fi horror.", "rating": 5},
            {"title": "Heat (1995)", "description": "Viewers of gritty crime thrillers.", "rating": 4}]}),
        '{"summarization": "Enjoys tense, dark thrillers: sci-fi horror and crime dramas.", '
        '"reasoning": "Both liked films are suspenseful genre films."}',
    )
    return Prompt(system, user, ("summarization", "reasoning"), [example])


def hard_negative_prompt(dataset: str, user_profile: str, item_title: str, item_profile: str,
                         k: int) -> Prompt:
    """S_H with D_H = {(u, v), P_u, P_v}, Eq. 4 (v2); asks for K candidates (Eq. 27 (v2))."""
    noun, plural, _ = domain(dataset)
    system = (
        f"You will act as an assistant to help me generate hard negative samples for a user. "
        f"Hard negative samples are {plural} that are very similar to the user's preferences "
        f"or to a {noun} the user interacted with, but are actually not of interest to the user. "
        f"I will give you the user's profile and one {noun} the user liked, in JSON format.\n"
        f'Answer in JSON format: {{"hard negative items": ["name of {noun} 1", ...] (exactly '
        f'{k} real {plural}, names only), "reasoning": "briefly explain your reasoning"}}.'
    )
    user = json.dumps({"user profile": user_profile,
                       f"liked {noun}": {"title": item_title, "description": item_profile}},
                      ensure_ascii=False)
    example = (
        json.dumps({"user profile": "Enjoys light-hearted family animation.",
                    f"liked {noun}": {"title": "Toy Story (1995)",
                                      "description": "Families who like funny animated films."}}),
        '{"hard negative items": ' + json.dumps(["Grave of the Fireflies (1988)",
                                                  "Watership Down (1978)",
                                                  "Akira (1988)"][:k])
        + ', "reasoning": "Animated, but dark and not light-hearted."}',
    ) if dataset == "ml-100k" else (
        json.dumps({"user profile": "Buys classic wooden toys for toddlers.",
                    f"liked {noun}": {"title": "Wooden Train Set",
                                      "description": "Parents of young children."}}),
        '{"hard negative items": ' + json.dumps(["Electric Model Railway Kit", "Train Video Game",
                                                  "Metal Die-cast Locomotive"][:k])
        + ', "reasoning": "Trains, but not for toddlers."}',
    )
    return Prompt(system, user, ("hard negative items", "reasoning"), [example])
