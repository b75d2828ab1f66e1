from testbed.echo.server import main

raise SystemExit(main())
