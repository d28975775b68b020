"""Customer-facing texts of the runtime itself (not the LLM's), in ru, en, es and pt."""

from __future__ import annotations

PHRASES: dict[str, dict[str, str]] = {
    "found_one": {
        "ru": "Вот что я нашёл в наших материалах (это выдержка из документа):",
        "en": "Here is what I found in our materials (an excerpt from our documents):",
        "es": "Esto es lo que encontré en nuestros materiales (un extracto de nuestros documentos):",
        "pt": "Isto é o que encontrei nos nossos materiais (um trecho dos nossos documentos):",
    },
    "source": {"ru": "Источник", "en": "Source", "es": "Fuente", "pt": "Fonte"},
    "sources": {"ru": "Источники", "en": "Sources", "es": "Fuentes", "pt": "Fontes"},
    "outro": {
        "ru": "Если это не ответ на ваш вопрос, напишите, и я подключу коллегу.",
        "en": "If this does not answer your question, just say so and a colleague will help.",
        "es": "Si esto no responde a su pregunta, díganoslo y un colega le ayudará.",
        "pt": "Se isto não responder à sua pergunta, diga-nos e um colega vai ajudar.",
    },
    "nothing_found": {
        "ru": "Спасибо за сообщение! Я не нашёл этого в наших материалах — вам поможет менеджер, я передаю "
              "ему ваш вопрос.",
        "en": "Thank you for your message! I could not find this in our information — a manager will help, "
              "I am passing your question on.",
        "es": "¡Gracias por su mensaje! No encontré esto en nuestra información: le ayudará un gestor, le paso "
              "su pregunta.",
        "pt": "Obrigado pela sua mensagem! Não encontrei isto nas nossas informações: um gestor vai ajudar, "
              "vou passar a sua pergunta.",
    },
    "not_found": {  # the same, for an agent whose rules do not hand off
        "ru": "Спасибо за сообщение! Я не нашёл этого в наших материалах — с этим вам поможет менеджер.",
        "en": "Thank you for your message! I could not find this in our information — a manager will help "
              "you with it.",
        "es": "¡Gracias por su mensaje! No encontré esto en nuestra información: un gestor le ayudará con ello.",
        "pt": "Obrigado pela sua mensagem! Não encontrei isto nas nossas informações: um gestor vai ajudar.",
    },
    "small_talk": {
        "ru": "Здравствуйте! Я помогу с вопросами о наших товарах, ценах, доставке и оплате. Что вас интересует?",
        "en": "Hello! I can help with questions about our products, prices, delivery and payment. What would "
              "you like to know?",
        "es": "¡Hola! Puedo ayudarle con preguntas sobre nuestros productos, precios, envío y pago. ¿Qué le "
              "interesa?",
        "pt": "Olá! Posso ajudar com perguntas sobre os nossos produtos, preços, entrega e pagamento. O que "
              "gostaria de saber?",
    },
    "error_handoff": {
        "ru": "Спасибо за сообщение! Коллега ответит вам в ближайшее время.",
        "en": "Thank you for your message! A colleague will get back to you shortly.",
        "es": "¡Gracias por su mensaje! Un colega le responderá en breve.",
        "pt": "Obrigado pela sua mensagem! Um colega vai responder-lhe em breve.",
    },
    "handoff": {
        "ru": "Передаю ваш вопрос коллеге — он скоро подключится к диалогу.",
        "en": "I am passing your question to a colleague who will join the conversation shortly.",
        "es": "Paso su pregunta a un colega que se unirá a la conversación en breve.",
        "pt": "Vou passar a sua pergunta a um colega, que entrará na conversa em breve.",
    },
}


def phrase(key: str, language: str) -> str:
    texts = PHRASES[key]
    return texts.get(language) or texts["en"]
