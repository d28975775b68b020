"""Every dialog's states. Renaming one strands its old buttons (UnknownState): the errors router
restarts such a user's menu politely."""

from aiogram.fsm.state import State, StatesGroup


class MainMenu(StatesGroup):
    main = State()


class Onboarding(StatesGroup):
    choose = State()
    org_name = State()


class Orgs(StatesGroup):
    list = State()
    new_name = State()


class Team(StatesGroup):
    list = State()
    member = State()
    role = State()
    remove = State()
    invite_role = State()
    invite_link = State()


class Agents(StatesGroup):
    list = State()
    card = State()
    edit = State()
    delete = State()


class AgentWizard(StatesGroup):
    name = State()
    persona = State()
    instructions = State()
    language = State()
    model = State()
    pipeline = State()
    stages = State()
    actions = State()
    fields = State()
    delivery = State()
    hours = State()
    handoff = State()
    confirm = State()


class Kommo(StatesGroup):
    status = State()
    address = State()
    token = State()
    oauth = State()
    disconnect = State()
    delivery_agent = State()
    delivery_mode = State()
    delivery_bot = State()
    delivery_field = State()
    delivery_result = State()


class Settings(StatesGroup):
    language = State()
    mutes = State()


class TestChat(StatesGroup):
    agent = State()
    chat = State()
    stage = State()


class Teach(StatesGroup):
    answer = State()


class Knowledge(StatesGroup):
    agent = State()
    sources = State()
    source = State()
    delete = State()
    pair = State()
    pair_edit = State()
    pair_delete = State()


class ApprovalEdit(StatesGroup):
    text = State()


class Campaigns(StatesGroup):
    list = State()
    agent = State()
    stage = State()
    text = State()
    preview = State()
    card = State()
