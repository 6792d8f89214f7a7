"""The sandbox's OAuth2 (bot/sandbox/oauth.py) is as strict as Discord: each refusal a test of its own."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import parse_qs, urlsplit

import aiohttp
import discord
import pytest

from bot.sandbox import Sandbox
from bot.sandbox.oauth import s256

pytestmark = pytest.mark.timeout(30)
REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture
async def world():
    async with Sandbox() as sb:
        sb.oauth.register_redirect(REDIRECT)
        guild = sb.create_guild("Shared")
        role = sb.create_role(guild.id, "Mods", permissions=discord.Permissions(manage_guild=True).value)
        mod = sb.add_member(guild.id, "mod", roles=[role.id])
        member = sb.add_member(guild.id, "member")
        other = sb.create_guild("Elsewhere")
        async with aiohttp.ClientSession() as http:
            yield sb, http, guild, other, mod, member


def _verifier() -> str:
    return secrets.token_urlsafe(48)


async def _authorize(sb, http, user_id: int, *, verifier: str, state: str = "st4te", scope="identify guilds") -> str:
    params = {
        "client_id": sb.oauth.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": scope,
        "state": state,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    page = await http.get(f"{sb.base_url}/oauth2/authorize", params=params)
    assert page.status == 200
    assert f"value='{user_id}'" in await page.text()  # the sandbox user is offered on the page
    form = {**params, "user_id": str(user_id), "decision": "authorize"}
    resp = await http.post(f"{sb.base_url}/oauth2/authorize", data=form, allow_redirects=False)
    assert resp.status == 302
    location = urlsplit(resp.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert query["state"] == [state]
    return query["code"][0]


async def _token(sb, http, **form) -> aiohttp.ClientResponse:
    body = {"client_id": sb.oauth.client_id, "client_secret": sb.oauth.client_secret, **form}
    return await http.post(f"{sb.api_base}/oauth2/token", data=body)


async def test_code_flow_gives_user_and_guilds_with_permissions(world):
    sb, http, guild, _other, mod, member = world
    verifier = _verifier()
    code = await _authorize(sb, http, mod.id, verifier=verifier)
    resp = await _token(
        sb, http, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
    )
    assert resp.status == 200
    token = await resp.json()
    assert token["token_type"] == "Bearer" and token["scope"] == "identify guilds" and token["expires_in"] == 604800
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    me = await (await http.get(f"{sb.api_base}/users/@me", headers=auth)).json()
    assert me["id"] == str(mod.id) and "email" not in me
    guilds = await (await http.get(f"{sb.api_base}/users/@me/guilds", headers=auth)).json()
    assert [g["id"] for g in guilds] == [str(guild.id)]  # not the guild the member is not in
    perms = discord.Permissions(int(guilds[0]["permissions"]))
    assert perms.manage_guild and guilds[0]["owner"] is False
    assert set(guilds[0]) == {"id", "name", "icon", "banner", "owner", "permissions", "features"}
    # A member without the role: the same route, no Manage Server.
    verifier2 = _verifier()
    code2 = await _authorize(sb, http, member.id, verifier=verifier2)
    token2 = await (
        await _token(
            sb, http, grant_type="authorization_code", code=code2, redirect_uri=REDIRECT, code_verifier=verifier2
        )
    ).json()
    guilds2 = await (
        await http.get(f"{sb.api_base}/users/@me/guilds", headers={"Authorization": f"Bearer {token2['access_token']}"})
    ).json()
    assert not discord.Permissions(int(guilds2[0]["permissions"])).manage_guild


async def test_code_is_single_use_and_a_replay_revokes_its_token(world):
    sb, http, _g, _o, mod, _m = world
    verifier = _verifier()
    code = await _authorize(sb, http, mod.id, verifier=verifier)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    first = await (await _token(sb, http, **form)).json()
    again = await _token(sb, http, **form)
    assert again.status == 400 and (await again.json())["error"] == "invalid_grant"
    me = await http.get(f"{sb.api_base}/users/@me", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert me.status == 401


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_verifier": "x" * 43}, "invalid_grant"),  # wrong verifier
        ({"code_verifier": None}, "invalid_grant"),  # verifier missing
        ({"redirect_uri": "http://127.0.0.1:9/other"}, "invalid_grant"),
        ({"code": "not-a-code"}, "invalid_grant"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
    ],
)
async def test_token_exchange_refusals(world, change, error):
    sb, http, _g, _o, mod, _m = world
    verifier = _verifier()
    code = await _authorize(sb, http, mod.id, verifier=verifier)
    form = {
        "client_id": sb.oauth.client_id,
        "client_secret": sb.oauth.client_secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        **change,
    }
    resp = await http.post(f"{sb.api_base}/oauth2/token", data={k: v for k, v in form.items() if v is not None})
    assert (await resp.json())["error"] == error
    assert resp.status in (400, 401)
    # A refused attempt does not burn a good code only if nothing about the code was wrong; the right
    # exchange still works after a bad client secret (the code was never looked at).
    if error == "invalid_client":
        ok = await _token(
            sb, http, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
        )
        assert ok.status == 200


async def test_expired_code_json_body_and_basic_auth(world):
    sb, http, _g, _o, mod, _m = world
    verifier = _verifier()
    code = await _authorize(sb, http, mod.id, verifier=verifier)
    json_body = await http.post(
        f"{sb.api_base}/oauth2/token",
        json={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert json_body.status == 400  # Discord: form-encoded only
    real_now = sb.oauth.now
    sb.oauth.now = lambda: real_now() + 601  # just past the code's 10-minute life
    expired = await _token(
        sb, http, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
    )
    assert (await expired.json())["error"] == "invalid_grant"
    sb.oauth.now = real_now
    code = await _authorize(sb, http, mod.id, verifier=verifier)
    basic = base64.b64encode(f"{sb.oauth.client_id}:{sb.oauth.client_secret}".encode()).decode()
    resp = await http.post(
        f"{sb.api_base}/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status == 200
    refreshed = await _token(sb, http, grant_type="refresh_token", refresh_token=(await resp.json())["refresh_token"])
    assert refreshed.status == 200


async def test_authorize_refusals_and_scopes(world):
    sb, http, _g, _o, mod, _m = world
    base = {"client_id": sb.oauth.client_id, "redirect_uri": REDIRECT, "response_type": "code", "scope": "identify"}
    for bad in (
        {"redirect_uri": "http://evil.example/cb"},
        {"scope": "identify admin"},
        {"client_id": "1"},
        {"response_type": "token"},
        {"code_challenge": "x" * 43, "code_challenge_method": "plain"},
    ):
        resp = await http.get(f"{sb.base_url}/oauth2/authorize", params={**base, **bad}, allow_redirects=False)
        assert resp.status == 400, bad
    # identify only: the guilds route is refused, and a user token never reaches a bot route.
    verifier = _verifier()
    code = await _authorize(sb, http, mod.id, verifier=verifier, scope="identify")
    token = await (
        await _token(
            sb, http, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
        )
    ).json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    assert (await http.get(f"{sb.api_base}/users/@me/guilds", headers=auth)).status == 401
    assert (await http.get(f"{sb.api_base}/gateway/bot", headers=auth)).status == 401
    assert (await http.get(f"{sb.api_base}/users/@me/guilds?limit=201", headers=auth)).status == 401
    # Denied consent goes back with error=access_denied and the state.
    resp = await http.post(
        f"{sb.base_url}/oauth2/authorize",
        data={**base, "state": "s", "decision": "cancel"},
        allow_redirects=False,
    )
    assert parse_qs(urlsplit(resp.headers["Location"]).query) == {
        "error": ["access_denied"],
        "error_description": ["The resource owner denied the request"],
        "state": ["s"],
    }
