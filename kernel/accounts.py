"""Accounts: signing up, logging in, the profile and the password, under one set of rules.

The JSON API, the pages, the admin tools and the sandbox all go through
:class:`Accounts`, so an account made or changed anywhere obeys the same
rules: the username rules, the password's length, the log-in and sign-up limits, and
the ``user_created`` hook once a sign-up is committed. Request bodies are
validated at the edge (their field types and lengths); what is checked here
holds whoever calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from kernel.errors import ApiError
from kernel.identity import User, check_text, check_username, clean_display_name
from kernel.passwords import hash_password, verify_password
from kernel.plugin.answers import settle

if TYPE_CHECKING:
    from kernel.app import Kernel

# The longest of each, in characters; the JSON API's body models use the same limits.
DISPLAY_NAME_LENGTH = 50
BIO_LENGTH = 160
# Hashing a password costs time in proportion to its length: a cap keeps a log-in cheap to refuse.
PASSWORD_LENGTH = 1024
# auth.signups_per_client_per_hour counts over this many seconds.
SIGNUP_WINDOW = 3600.0


def at_most(value: str, field: str, maximum: int) -> str:
    """``value`` when it has at most ``maximum`` characters; else a 422 naming ``field``, worded as the API's."""
    if len(value) > maximum:
        raise ApiError(422, "validation_error", f"{field}: String should have at most {maximum} characters", field=field)
    return value


class Accounts:
    """One deployment's accounts service. Every method runs its blocking work off the event loop."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.identity = kernel.identity
        # Hashing takes tens of milliseconds of CPU: it gets threads of its own so
        # that a burst of log-ins cannot starve the short database calls.
        self.password_limiter = anyio.CapacityLimiter(2)
        auth, limits = kernel.settings.auth, kernel.limits
        self.failures_by_username = limits.limiter("login-username", auth.login_failures_per_username, auth.login_window_seconds)
        self.failures_by_client = limits.limiter("login-client", auth.login_failures_per_client, auth.login_window_seconds)
        self.signups_by_client = limits.limiter("signup-client", auth.signups_per_client_per_hour, SIGNUP_WINDOW)

    def check_password_rules(self, password: str, field: str = "password") -> None:
        """422 naming ``field`` when the password is shorter than ``auth.min_password_length``."""
        minimum = self.kernel.settings.auth.min_password_length
        if len(password) < minimum:
            raise ApiError(422, "validation_error", f"{field}: at least {minimum} characters", field=field)
        at_most(password, field, PASSWORD_LENGTH)

    async def sign_up(self, username: str, password: str, display_name: str | None = None, client: str | None = None) -> User:
        """Create an account after checking every rule, then tell the plugins (``user_created``).

        :param client: the address a sign-up from the web came from: at most
            ``auth.signups_per_client_per_hour`` accounts are made from one
            (429 with Retry-After beyond). None for the operator's tools, which are not limited.
        """
        check_username(username, self.identity.reserved)
        self.check_password_rules(password)
        display = clean_display_name(at_most(display_name or "", "display_name", DISPLAY_NAME_LENGTH), username)
        counted = client is not None and self.kernel.settings.auth.signups_per_client_per_hour > 0
        if counted:
            assert client is not None
            wait = await self.signups_by_client.take(client)
            if wait:
                raise ApiError(
                    429, "rate_limited", f"Too many sign-ups from this address. Try again in {wait} seconds.", headers={"Retry-After": str(wait)}
                )
        try:
            password_hash = await anyio.to_thread.run_sync(hash_password, password, limiter=self.password_limiter)
            user = await anyio.to_thread.run_sync(self.identity.create_user, username, password_hash, display)
        except Exception:
            if counted:
                assert client is not None
                await self.signups_by_client.forgive(client)  # no account was made: a taken name costs no sign-up
            raise
        await settle(self.kernel.plugins.hook.user_created(kernel=self.kernel, user=user))
        return user

    async def log_in(self, username: str, password: str, client: str) -> User:
        """The account whose password this is, under the rate limits: 429 with Retry-After, or 401.

        The attempt counts as a failure before the password is checked, and is
        forgiven only when it succeeds: a burst of guesses sent at once is
        limited like guesses sent one by one.

        :param client: the address the attempt came from, counted on its own.
        """
        at_most(password, "password", PASSWORD_LENGTH)
        by_username, by_client = self.failures_by_username, self.failures_by_client
        key_user = username.lower()
        wait = await by_username.take(key_user)
        if not wait:
            wait = await by_client.take(client)
            if wait:
                await by_username.forgive(key_user)  # refused before it was tried: it was no guess
        if wait:
            raise ApiError(
                429, "rate_limited", f"Too many failed log-ins. Try again in {wait} seconds.", headers={"Retry-After": str(wait)}
            )
        found = await anyio.to_thread.run_sync(self.identity.password_hash_of, username)
        ok = await anyio.to_thread.run_sync(verify_password, found[1] if found else None, password, limiter=self.password_limiter)
        user = await anyio.to_thread.run_sync(self.identity.user_by_id, found[0]) if ok and found is not None else None
        if user is None:
            raise ApiError(401, "invalid_credentials", "Wrong username or password.")
        await by_username.reset(key_user)
        await by_client.forgive(client)
        return user

    async def update_profile(self, user: User, display_name: str | None = None, bio: str | None = None) -> User:
        """Change the display name and the bio (None leaves one as it is); returns the account as it now is."""
        display = None if display_name is None else clean_display_name(at_most(display_name, "display_name", DISPLAY_NAME_LENGTH), user.username)
        cleaned_bio = None if bio is None else check_text(at_most(bio, "bio", BIO_LENGTH), "bio", multiline=True).strip()
        return await anyio.to_thread.run_sync(self.identity.update_profile, user.id, display, cleaned_bio)

    async def change_password(self, user: User, current: str, new: str, keep_session_id: int | None = None) -> None:
        """Check the current password, then set the new one and end every other session of the user.

        :param keep_session_id: the browser session that asked, which stays signed in.
        """
        at_most(current, "current_password", PASSWORD_LENGTH)
        stored = await anyio.to_thread.run_sync(self.identity.password_hash_by_id, user.id)
        if not await anyio.to_thread.run_sync(verify_password, stored, current, limiter=self.password_limiter):
            raise ApiError(403, "invalid_credentials", "current_password: wrong password", field="current_password")
        self.check_password_rules(new, "new_password")
        new_hash = await anyio.to_thread.run_sync(hash_password, new, limiter=self.password_limiter)
        await anyio.to_thread.run_sync(self.identity.set_password, user.id, new_hash, keep_session_id)
