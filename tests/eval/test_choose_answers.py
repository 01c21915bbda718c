"""eval.offline's quote mode: greedy decoding constrained to the router's "[n] sentence" choices."""
from __future__ import annotations

from pathlib import Path

from components.eval.model_eval import choose_answers, load_model

CHOICES = ["[1] The assert statement inserts debugging assertions into a program.",
           "[1] The del statement removes a binding of a name from a namespace.",
           "[2] The del statement removes a binding and then raises NameError."]


def test_every_answer_is_one_whole_choice_and_follows_the_model(tiny_model_dir: Path):
    import torch

    model, tok, device = load_model(tiny_model_dir, None)
    questions = ["What does assert do?", "How do I delete a name?"]
    answers = choose_answers(model, tok, device, questions, [CHOICES, CHOICES[1:]], "system", max_new_tokens=128,
                             use_chat_template=True)
    assert answers[0] in CHOICES and answers[1] in CHOICES[1:]
    assert answers == choose_answers(model, tok, device, questions, [CHOICES, CHOICES[1:]], "system", 128, True)
    # The pick is the model's: make it prefer the token that starts the third choice's "[2]".
    first_two = tok(CHOICES[2], add_special_tokens=False)["input_ids"][:2]
    with torch.no_grad():
        model.lm_head.weight[first_two[1]] += 50 * model.lm_head.weight.abs().max()
    picked = choose_answers(model, tok, device, questions[:1], [CHOICES], "system", 128, True)[0]
    assert picked == CHOICES[2]


def test_short_budget_gives_a_prefix_and_no_choices_an_empty_answer(tiny_model_dir: Path):
    model, tok, device = load_model(tiny_model_dir, None)
    prefix, empty = choose_answers(model, tok, device, ["q", "q"], [CHOICES[:1], []], "system", max_new_tokens=3,
                                   use_chat_template=True)
    assert CHOICES[0].startswith(prefix) and 0 < len(prefix) < len(CHOICES[0])
    assert empty == ""
