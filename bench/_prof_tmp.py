import time, cProfile, pstats, io
from bench.harness import *
from portcullis.accounts.passwords import hash_password
with services() as svc:
    accts = seed_viewonly(1, 1, hash_password(PASSWORD), "p")
    cookie = full_session(accts[0])
    from bench.wsgi_bare import application as app
    c = app.test_client()
    c.set_cookie("portcullis_session", cookie, domain="localhost")
    for _ in range(50): r = c.get("/api/v1/auth/me"); assert r.status_code == 200, r.data
    for path in ("/_bench/bare", "/api/v1/auth/me"):
        t = time.perf_counter(); tc = time.process_time()
        for _ in range(200): c.get(path)
        print(path, "wall ms", (time.perf_counter()-t)/200*1000, "cpu ms", (time.process_time()-tc)/200*1000)
    pr = cProfile.Profile(); pr.enable()
    for _ in range(200): c.get("/api/v1/auth/me")
    pr.disable()
    s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(45); print(s.getvalue()[:9000])
    s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(20); print(s.getvalue()[:5000])
