"""The surface endpoints' wire format: the fields the proxy acts on, strictly typed.

As for chat, everything else in a body goes upstream unchanged.
"""

from rest_framework import serializers

from proxy.serializers import StrictCharField, StrictFloatField, StrictIntegerField

MAX_SPEECH_INPUT_CHARS = 4096  # OpenAI's limit
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")


class ModerationRequestSerializer(serializers.Serializer):
    model = StrictCharField(required=False, allow_blank=True, max_length=256)
    input = serializers.JSONField()

    def validate_input(self, value):
        if isinstance(value, str):
            return value
        if not isinstance(value, list) or not value:
            raise serializers.ValidationError("must be a string or a non-empty list")
        for item in value:
            if isinstance(item, str):
                continue
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text" and isinstance(item.get("text"), str):
                continue
            image = item.get("image_url") if isinstance(item, dict) else None
            url = image.get("url") if isinstance(image, dict) else None
            if kind == "image_url" and isinstance(url, str):
                continue
            raise serializers.ValidationError(
                "each item must be a string, a {'type': 'text', 'text': ...} part or an "
                "{'type': 'image_url', 'image_url': {'url': ...}} part"
            )
        return value


class ImageGenerationRequestSerializer(serializers.Serializer):
    model = StrictCharField(required=False, allow_blank=True, max_length=256)
    prompt = StrictCharField(max_length=32000)
    n = StrictIntegerField(required=False, min_value=1, max_value=10)
    response_format = serializers.ChoiceField(choices=("url", "b64_json"), required=False)
    size = StrictCharField(required=False, max_length=32)
    quality = StrictCharField(required=False, max_length=32)


class SpeechRequestSerializer(serializers.Serializer):
    model = StrictCharField(max_length=256)
    input = StrictCharField(max_length=MAX_SPEECH_INPUT_CHARS, trim_whitespace=False)
    voice = serializers.JSONField()
    response_format = serializers.ChoiceField(choices=SPEECH_FORMATS, required=False)
    speed = StrictFloatField(required=False, min_value=0.25, max_value=4.0)

    def validate_voice(self, value):
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            return value  # a custom voice, as the SDK sends it
        raise serializers.ValidationError("must be a voice name")


class TranscriptionRequestSerializer(serializers.Serializer):
    """The multipart form's text fields (the file is checked by the view)."""

    model = serializers.CharField(max_length=256)
    response_format = serializers.ChoiceField(choices=TRANSCRIPTION_FORMATS, required=False)
    language = serializers.CharField(required=False, max_length=16)
    prompt = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=1)


class BatchCreateRequestSerializer(serializers.Serializer):
    input_file_id = StrictCharField(max_length=64)
    endpoint = serializers.ChoiceField(
        choices=("/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses")
    )
    completion_window = serializers.ChoiceField(choices=("24h",))
    metadata = serializers.DictField(child=StrictCharField(max_length=512), required=False)
