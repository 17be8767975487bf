"""The kernel's pages: what anyone sees (public), a signed-in person's own pages (account), and the operators' (admin)."""

from starlette.routing import BaseRoute

from kernel.web.pages import account, admin, public

routes: list[BaseRoute] = [*public.routes, *account.routes, *admin.routes]
