"""The `hf` judge: a local transformers VLM (e.g. Qwen2.5-VL) grades the renders.

Same rubric prompt and the same strict reply parser as the `openai` judge. Greedy decoding, one
row at a time (judging is rarely the bottleneck next to rollouts). The model is loaded with the
project's torchvision-free loaders (`stages.core.vlm`).
"""

from __future__ import annotations

from .base import Judgement, JudgeRequest
from .rubric import parse_grades, rubric_prompt


class HFJudge:
    name = "hf"
    needs_images = True

    def __init__(self, model_path: str, max_new_tokens: int = 512, device: str | None = None):
        from stages.core import vlm

        self.vlm = vlm
        self.processor = vlm.load_processor(model_path)
        self.model = vlm.load_model(model_path, device=device)
        self.max_new_tokens = max_new_tokens

    def grade_one(self, request: JudgeRequest) -> Judgement:
        import torch

        size = request.scene.size
        prompt = rubric_prompt(request.preference, f"{size.x} x {size.y} x {size.z} m")
        try:
            images = [self.vlm.open_image(None, str(p)) for p in request.images]
        except Exception as err:  # noqa: BLE001 - a missing/broken render is this row's failure
            return Judgement(None, f"hf: cannot read render: {err}")
        content = [{"type": "image", "image": img} for img in images] + [{"type": "text", "text": prompt}]
        inputs = self.vlm.encode_chats(self.processor, [[{"role": "user", "content": content}]])
        inputs = inputs.to(self.model.device)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        reply = self.processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
        grades, problem = parse_grades(reply)
        return Judgement(grades) if grades is not None else Judgement(None, f"hf: malformed reply: {problem}")

    def grade(self, requests: list[JudgeRequest]) -> list[Judgement]:
        return [self.grade_one(r) for r in requests]
